"""Errors of report production (rendering, printing): bad setup the user must fix, never a verdict."""

from __future__ import annotations

from lab.errors import CertlabError


class ReportError(CertlabError):
    """A report cannot be produced: a missing tool (Chromium), a failed print, an unusable document."""
