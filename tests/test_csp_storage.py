"""lab.csp.storage: secrets found at rest, file modes, the bounded SFTP walk (fake SFTP, no device)."""

from __future__ import annotations

import base64
import io
import stat
from types import SimpleNamespace

import pytest

from lab.csp import storage
from lab.csp.storage import Secret, StoredFile

WIFI = Secret("wifi-key", "certlab-wifi-0123456789")


def test_forms_are_clear_hex_and_base64() -> None:
    f = storage.forms("abc12345")
    assert f["in clear"] == b"abc12345"
    assert f["hex"] == b"abc12345".hex().encode()
    assert f["base64"] == base64.b64encode(b"abc12345").rstrip(b"=")


def test_short_secrets_are_not_searched_and_said_so() -> None:
    keep, notes = storage.searchable([Secret("pw", "admin"), WIFI])
    assert keep == [WIFI]
    assert "pw: shorter than 8 characters" in notes[0]


@pytest.mark.parametrize("content, form", [
    (b'{"wifi_psk": "certlab-wifi-0123456789"}', "in clear"),
    (b"psk=" + b"certlab-wifi-0123456789".hex().encode(), "hex"),
    (b"psk=" + base64.b64encode(b"certlab-wifi-0123456789"), "base64"),
])
def test_find_secrets_in_clear_or_trivially_encoded(content: bytes, form: str) -> None:
    files = [StoredFile("/etc/certlab/config.json", 0o644, len(content), content)]
    (hit,) = storage.find_secrets(files, [WIFI])
    assert (hit.path, hit.secret, hit.form, hit.mode) == ("/etc/certlab/config.json", "wifi-key", form, 0o644)


def test_sealed_or_unread_files_hold_no_finding() -> None:
    files = [StoredFile("/etc/certlab/secrets.json", 0o600, 40, b'{"wifi_psk": {"sealed": "9f3a..."}}'),
             StoredFile("/data/big.bin", 0o644, 10**9, None, "too large")]
    assert storage.find_secrets(files, [WIFI]) == []


def test_modes() -> None:
    assert storage.parse_mode("0600") == storage.parse_mode("600") == 0o600
    with pytest.raises(ValueError):
        storage.parse_mode("rw-------")
    assert storage.excess_bits(0o600, 0o600) == 0
    assert storage.excess_bits(0o400, 0o600) == 0
    assert storage.excess_bits(0o644, 0o600) == 0o044
    assert storage.describe_mode(0o644) == "0644 (accessible to group and others)"
    assert storage.describe_mode(0o600) == "0600"


class FakeSftp:
    """A tree of {name: bytes | dict | "link"} as paramiko's SFTPClient shows it."""

    def __init__(self, tree: dict, modes: dict[str, int] | None = None):
        self.tree, self.modes, self.opened = tree, modes or {}, []

    def _get(self, path: str):
        node = self.tree
        for part in [p for p in path.split("/") if p]:
            if not isinstance(node, dict) or part not in node:
                raise FileNotFoundError(2, "No such file")
            node = node[part]
        return node

    def _attr(self, path: str, node, name: str = ""):
        if isinstance(node, dict):
            mode = stat.S_IFDIR | 0o755
        elif node == "link":
            mode = stat.S_IFLNK | 0o777
        else:
            mode = stat.S_IFREG | self.modes.get(path, 0o644)
        return SimpleNamespace(filename=name, st_mode=mode, st_size=0 if isinstance(node, (dict, str)) else len(node))

    def stat(self, path: str):
        return self._attr(path, self._get(path))

    def listdir_attr(self, path: str):
        node = self._get(path)
        return [self._attr(f"{path.rstrip('/')}/{n}", child, n) for n, child in node.items()]

    def open(self, path: str, mode: str = "r"):
        self.opened.append(path)
        return io.BytesIO(self._get(path))


def test_walk_reads_every_file_under_the_roots_and_skips_links() -> None:
    sftp = FakeSftp({"etc": {"certlab": {"config.json": b"{}", "secrets.json": b"x", "sub": {"deep": b"y"},
                                         "link": "link"}}, "data": {}},
                    {"/etc/certlab/secrets.json": 0o600})
    listing = storage.walk(sftp, ["/etc/certlab", "/data"])
    assert {f.path: f.mode for f in listing.files} == {
        "/etc/certlab/config.json": 0o644, "/etc/certlab/secrets.json": 0o600, "/etc/certlab/sub/deep": 0o644}
    assert listing.skipped == ["/etc/certlab/link"]
    assert listing.incomplete == []


def test_walk_says_what_it_could_not_search() -> None:
    sftp = FakeSftp({"data": {"big": b"x" * 100, "small": b"s"}, "afile": b"f"})
    listing = storage.walk(sftp, ["/data", "/nowhere", "/afile"], max_file_bytes=10)
    assert [f.path for f in listing.files if f.data is not None] == ["/data/small"]
    assert "/data/big: not read (larger than 10 bytes)" in listing.incomplete
    assert any(line.startswith("/nowhere: cannot read") for line in listing.incomplete)
    assert "/afile: not a folder" in listing.incomplete
    assert "/data/big" not in sftp.opened


def test_walk_is_bounded_in_files_and_depth() -> None:
    deep: dict = {"f": b"1"}
    for _ in range(5):
        deep = {"d": deep}
    sftp = FakeSftp({"r": {f"f{i}": b"." for i in range(10)}, "x": deep})
    listing = storage.walk(sftp, ["/r", "/x"], max_files=3)
    assert len(listing.files) == 3
    assert listing.incomplete == ["more than 3 files: stopped in /r, the rest not searched"]
    listing = storage.walk(sftp, ["/x"], max_depth=2)
    assert listing.files == [] and listing.incomplete == ["/x/d/d/d: deeper than 2 folders, not searched"]
