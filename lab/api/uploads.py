"""Receiving an uploaded file: streamed to disk in chunks, hashed on the way, refused past a limit.

Firmware images and assessor evidence arrive the same way; what each route does with the file
afterwards (parse an image, file evidence under its name) is its own business.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

from fastapi import HTTPException, UploadFile, status

from lab.ownerfiles import private_dir

CHUNK = 1 << 20
MULTIPART_SLACK = 64 << 10  # boundaries and part headers around the file in a multipart body


def too_large(limit: int, what: str = "file") -> HTTPException:
    return HTTPException(status.HTTP_413_CONTENT_TOO_LARGE,
                         f"the {what} is larger than the upload limit of {limit} bytes ({limit / (1 << 20):g} MiB); "
                         f"fix: ask the lab to raise CERTLAB_MAX_UPLOAD_MB")


def body_limit(limit: int) -> int:
    """The most bytes a multipart body carrying a file of at most `limit` bytes may have."""
    return limit + MULTIPART_SLACK


def receive(upload: UploadFile, folder: Path, limit: int, what: str = "file") -> tuple[Path, str, int]:
    """Copy the upload into a temporary file in `folder`: (its path, SHA-256, size); 413 past `limit`.
    The caller moves the file where it belongs or deletes it."""
    private_dir(folder)
    digest, size = hashlib.sha256(), 0
    fd, name = tempfile.mkstemp(dir=folder, prefix=".upload-")
    try:
        with os.fdopen(fd, "wb") as fh:
            while chunk := upload.file.read(CHUNK):
                size += len(chunk)
                if size > limit:
                    raise too_large(limit, what)
                digest.update(chunk)
                fh.write(chunk)
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise
    return Path(name), digest.hexdigest(), size
