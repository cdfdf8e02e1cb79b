"""The simulated telemetry client's retries (lab/sim/telemetry.py): back-off, the storm and the give-up flaws."""

from __future__ import annotations

import errno
import random

import pytest

from lab.sim import telemetry
from lab.sim.telemetry import TelemetryClient


class Stop(BaseException):
    """Ends the client's loop from a scripted send (the loop only catches network errors)."""


def _client(**kw) -> TelemetryClient:
    return TelemetryClient(host="192.0.2.1", port=8883, ca_file=None, interval=0.001, serial="S1", token="t",
                           firmware=lambda: "1.4.0", **kw)


def _run(monkeypatch, client: TelemetryClient, outcomes: list) -> tuple[list[float], int]:
    """Run the loop on scripted send results; returns (waits the loop asked for, sends made)."""
    waits: list[float] = []
    sends = []

    class Clock:
        def wait(self, seconds: float) -> bool:
            waits.append(seconds)
            return False

    def send(_temperature: float) -> str:
        sends.append(1)
        if not outcomes:
            raise Stop
        outcome = outcomes.pop(0)
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    monkeypatch.setattr(telemetry.threading, "Event", Clock)
    object.__setattr__(client, "send_once", send)
    try:
        client._loop()
    except Stop:
        pass
    return waits, len(sends)


def test_failures_back_off_with_jitter_and_a_success_returns_to_the_interval(monkeypatch) -> None:
    refused = ConnectionRefusedError(errno.ECONNREFUSED, "refused")
    waits, _ = _run(monkeypatch, _client(), [refused] * 5 + ["ok"])
    retries = waits[1:6]
    for wait, nominal in zip(retries, [0.25, 0.5, 1.0, 1.0, 1.0]):
        assert nominal * 0.5 <= wait <= nominal
    assert waits[6] == 0.001


def test_the_storm_flaw_retries_at_a_fixed_fast_rate(monkeypatch) -> None:
    waits, _ = _run(monkeypatch, _client(backoff=False), [ConnectionRefusedError()] * 4)
    assert waits[1:5] == [telemetry.STORM_RETRY_S] * 4


def test_a_link_that_is_down_is_a_failure_retried_by_a_conforming_device(monkeypatch) -> None:
    link = iter([False, False, True])
    waits, sends = _run(monkeypatch, _client(link_up=lambda: next(link, True)), ["ok"])
    assert sends == 2 and waits[1] <= 0.25 and waits[2] <= 0.5


@pytest.mark.parametrize("cause", ["carrier", "timeout", "unreachable"])
def test_the_give_up_flaw_stops_for_good_after_a_link_level_failure(monkeypatch, cause: str) -> None:
    outcomes = {"carrier": [], "timeout": [TimeoutError("timed out")],
                "unreachable": [OSError(errno.EHOSTUNREACH, "No route to host")]}[cause]
    client = _client(gives_up_on_link_loss=True, link_up=(lambda: cause != "carrier"))
    waits, sends = _run(monkeypatch, client, outcomes + ["ok"])
    assert len(waits) == 1 and sends == (0 if cause == "carrier" else 1)


def test_the_give_up_flaw_still_retries_a_refusal(monkeypatch) -> None:
    waits, sends = _run(monkeypatch, _client(gives_up_on_link_loss=True), [ConnectionRefusedError()] * 2 + ["ok"])
    assert sends == 4 and waits[1] <= 0.25


def test_retry_waits_never_exceed_the_documented_cap() -> None:
    client, rng = _client(), random.Random(1)
    assert all(client.retry_wait(n, rng) <= telemetry.RETRY_MAX_S for n in range(12))


def test_an_interface_this_namespace_lacks_counts_as_linked() -> None:
    assert telemetry.carrier_up("certlab-none0") is True
