"""Which import packages the certlab wheel holds (pyproject.toml has everything else).

Here rather than in pyproject.toml because one package is mapped from a folder of another name:
the sample lab stays at `inventory/` in the source tree (every doc and test names it there) and
ships as the import package `certlab_examples`; the suites ship as `testsuites`, the same path as
in the tree. lab/resources.py finds both through importlib.resources, installed or editable.
"""

from setuptools import find_namespace_packages, setup

setup(
    packages=[*find_namespace_packages(include=["lab", "lab.*", "fixtures", "fixtures.*"]), "testsuites",
              "certlab_examples"],
    package_dir={"certlab_examples": "inventory"},
)
