"""What the lab judges of a deletion function's output (5.11-4-1), testable without a DUT."""

from __future__ import annotations

import re

_CONTROL = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\r")  # terminal colour/cursor sequences and carriage returns


def confirmation_shown(output: str, pattern: str) -> bool:
    """Whether `output` (what the command printed where it ran) holds the documented confirmation.

    `pattern` is the IXIT's regular expression (25-DelFunc confirmation_pattern), searched line by
    line (^ and $ anchor at lines) in the output without terminal control sequences.
    """
    return re.search(pattern, _CONTROL.sub("", output), re.MULTILINE) is not None
