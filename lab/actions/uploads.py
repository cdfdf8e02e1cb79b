"""Receiving an uploaded file: streamed to disk in chunks, hashed on the way, refused past a limit.

Firmware images and assessor evidence arrive the same way, from the API's multipart body or a page's
form; the action gets the file's stream (not a framework's upload object), so both front ends share it.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import BinaryIO

from lab.actions.errors import TooLarge
from lab.ownerfiles import private_dir

CHUNK = 1 << 20


def too_large_message(limit: int, what: str = "file") -> str:
    return (f"the {what} is larger than the upload limit of {limit} bytes ({limit / (1 << 20):g} MiB); "
            f"fix: ask the lab to raise CERTLAB_MAX_UPLOAD_MB")


def receive(stream: BinaryIO, folder: Path, limit: int, what: str = "file") -> tuple[Path, str, int]:
    """Copy the stream into a temporary file in `folder`: (its path, SHA-256, size); TooLarge past `limit`.
    The caller moves the file where it belongs or deletes it."""
    private_dir(folder)
    digest, size = hashlib.sha256(), 0
    fd, name = tempfile.mkstemp(dir=folder, prefix=".upload-")
    try:
        with os.fdopen(fd, "wb") as fh:
            while chunk := stream.read(CHUNK):
                size += len(chunk)
                if size > limit:
                    raise TooLarge(too_large_message(limit, what))
                digest.update(chunk)
                fh.write(chunk)
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise
    return Path(name), digest.hexdigest(), size
