"""Upload limits as the API answers them: the multipart body a file of the upload limit may take, and its 413.

Receiving the file itself (streamed, hashed, refused past the limit) is `lab.actions.uploads.receive`,
shared with the web pages.
"""

from __future__ import annotations

from fastapi import HTTPException, status

from lab.actions.uploads import too_large_message

MULTIPART_SLACK = 64 << 10  # boundaries and part headers around the file in a multipart body


def too_large(limit: int, what: str = "file") -> HTTPException:
    return HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, too_large_message(limit, what))


def body_limit(limit: int) -> int:
    """The most bytes a multipart body carrying a file of at most `limit` bytes may have."""
    return limit + MULTIPART_SLACK
