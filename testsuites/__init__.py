"""The test suites certlab ships (en303645: the assessment; examples: a short tour of the lab).

A package only so that an installed certlab finds them (lab/resources.py); pytest collects the
suite folders below as plain test directories, never through this package.
"""
