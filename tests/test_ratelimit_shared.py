"""The rate limit shared by the workers of one server (lab/api/ratelimit.py, issue 19 item 3).

`certlab serve --workers N` must not grant N times a token's rate: the buckets live in one file
under the data folder. Clocks are injected: no sleeps, no timed assertions.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from lab.api.app import create_app
from lab.api.ratelimit import SIZE, SLOT, SLOTS, WINDOW, RateLimiter, rate_limit_file, take
from lab.api.settings import ApiSettings
from lab.errors import CertlabError

ROOT = Path(__file__).resolve().parent.parent


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_the_bucket_arithmetic() -> None:
    assert take(5, 10.0, 10.0, per_second=1, burst=5) == (4, 0.0)
    assert take(0, 10.0, 12.0, per_second=1, burst=5) == (1, 0.0)  # refilled two, took one
    assert take(0, 10.0, 10.5, per_second=1, burst=5) == (0.5, 0.5)  # half a token: wait half a second
    assert take(0, 10.0, 99.0, per_second=1, burst=5) == (4, 0.0)  # never above the burst
    assert take(0, 50.0, 10.0, per_second=1, burst=5) == (4, 0.0)  # stamped by a previous boot: full


@pytest.mark.parametrize("shared", [False, True])
def test_burst_then_refusal_then_refill(tmp_path: Path, shared: bool) -> None:
    clock = Clock()
    limiter = RateLimiter(2, 3, rate_limit_file(tmp_path, "api") if shared else None, clock=clock)
    assert [limiter.allow("k") for _ in range(3)] == [0, 0, 0]
    assert limiter.allow("k") == pytest.approx(0.5)
    assert limiter.allow("other") == 0  # buckets are per key
    clock.now += 0.5  # one token back
    assert limiter.allow("k") == 0
    assert limiter.allow("k") > 0
    clock.now += 100
    assert [limiter.allow("k") for _ in range(4)][:3] == [0, 0, 0]


def test_two_limiters_on_one_folder_share_the_budget(tmp_path: Path) -> None:
    clock = Clock()
    path = rate_limit_file(tmp_path, "api")
    one, two = RateLimiter(1, 4, path, clock=clock), RateLimiter(1, 4, path, clock=clock)
    assert [one.allow("token"), two.allow("token"), one.allow("token"), two.allow("token")] == [0, 0, 0, 0]
    assert one.allow("token") > 0 and two.allow("token") > 0
    other = RateLimiter(1, 4, rate_limit_file(tmp_path, "login"), clock=clock)
    assert other.allow("token") == 0  # another name, another table


def test_the_file_is_private_and_laid_out_once(tmp_path: Path) -> None:
    path = rate_limit_file(tmp_path, "api")
    RateLimiter(1, 2, path, clock=Clock()).allow("a")
    assert path.stat().st_size == SIZE and path.stat().st_mode & 0o777 == 0o600
    again = RateLimiter(1, 2, path, clock=Clock())  # opening again keeps what is spent
    assert again.allow("a") == 0 and again.allow("a") > 0


def test_a_file_not_ours_is_laid_out_afresh(tmp_path: Path) -> None:
    path = rate_limit_file(tmp_path, "api")
    path.parent.mkdir()
    path.write_bytes(b"junk")
    assert RateLimiter(1, 1, path, clock=Clock()).allow("a") == 0
    assert path.stat().st_size == SIZE


def test_many_keys_fit_and_a_full_window_reuses_the_idlest_slot(tmp_path: Path) -> None:
    clock = Clock()
    limiter = RateLimiter(1e-9, 1, rate_limit_file(tmp_path, "api"), clock=clock)
    keys = [f"key-{i}" for i in range(SLOTS // 4)]
    for key in keys:
        clock.now += 1
        assert limiter.allow(key) == 0
    # every key still remembered: its single token is spent
    assert all(limiter.allow(key) > 0 for key in keys[:200])
    for i in range(SLOTS):  # more keys than slots: some windows fill and their idlest slots go
        clock.now += 1
        limiter.allow(f"flood-{i}")
    assert limiter.allow(f"flood-{SLOTS - 1}") > 0  # the newest keys are still held


def test_a_folder_that_cannot_be_written_is_one_line(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(CertlabError, match=r"rate limit file .*: cannot open it .*fix: set CERTLAB_DATA_DIR"):
        RateLimiter(1, 1, rate_limit_file(blocker, "api"))


SPEND = """
import sys
from pathlib import Path
from lab.api.ratelimit import RateLimiter
limiter = RateLimiter(1e-9, 50, Path(sys.argv[1]))  # no refill worth the name: the burst is the budget
sys.stdin.read()  # start together
print(sum(1 for _ in range(int(sys.argv[2])) if limiter.allow("token") == 0))
"""


def test_processes_at_once_stay_within_one_budget(tmp_path: Path) -> None:
    path = rate_limit_file(tmp_path, "api")
    procs = [subprocess.Popen([sys.executable, "-c", SPEND, str(path), "5000"], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True, cwd=ROOT) for _ in range(4)]
    try:
        for proc in procs:  # all are up (importing the limiter) before any starts spending
            assert proc.stdin is not None
            proc.stdin.close()
        for proc in procs:
            proc.wait(60)
        outs = [proc.stdout.read() if proc.stdout else "" for proc in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
    granted = [int(out) for out in outs]
    assert sum(granted) == 50, granted  # 20,000 calls from 4 processes, one budget of 50


def test_the_app_shares_its_limiter_through_the_data_folder(tmp_path: Path) -> None:
    settings = ApiSettings(data_dir=tmp_path, database_url=f"sqlite:///{tmp_path / 'store.db'}",
                           rate_per_second=1e-9, rate_burst=2)
    first, second = create_app(settings), create_app(settings)
    try:
        assert first.state.services.limiter.path == rate_limit_file(tmp_path, "api")
        assert first.state.services.limiter.allow("t") == 0
        assert second.state.services.limiter.allow("t") == 0
        assert first.state.services.limiter.allow("t") > 0  # the second app spent the other token
    finally:
        for app in (first, second):
            app.state.services.limiter.close()
            app.state.services.store.close()


def test_slot_layout_is_what_the_file_size_says() -> None:
    assert SLOT.size == 32 and WINDOW < SLOTS
