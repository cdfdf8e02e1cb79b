"""Connection attempts seen on the wire, judged against the documented retry policy (5.9-1-2, 5.9-3-2).

A connection attempt is the first SYN of a client port (a retransmitted SYN is the same attempt).
The judgement needs only (time, client port) pairs, so it is tested without a network.
EN 303 645 5.9-3 asks for an orderly reconnection: a device that retries faster than its IXIT's
back-off (11-ComMech `reconnect`) makes the storm the provision is about, whatever its reasons.
Each retry is timed from the first failure, never from the retry before it: the lab may see an
attempt late (its own load, or the device's), never early, so a late retry must not make the next
one look early (see judge_backoff).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from lab.ixit import Reconnect

TOLERANCE_S = 0.05  # a retry this much earlier than documented is still in time (clock and capture granularity)
TOLERANCE_SHARE = 0.1  # ... or this share of the documented wait, whichever is larger
MIN_GAPS = 3  # fewest retries the judgement needs, whatever the policy
JITTER_GAPS = 5  # retries needed before a lack of jitter is judged
JITTER_SPREAD = 0.1  # documented jitter J: the waits' spread (relative to their nominal) must reach J * this
MAX_GAPS = 8  # never wait for more retries than this


@dataclass(frozen=True)
class Attempt:
    """One connection attempt of the DUT: when its first SYN was seen, from which client port."""

    at: float
    sport: int


def attempts(syns: Iterable[tuple[float, int]]) -> list[Attempt]:
    """The attempts among SYNs seen as (time, client port): the first SYN per client port, in time order."""
    first: dict[int, float] = {}
    for at, sport in syns:
        if sport not in first or at < first[sport]:
            first[sport] = at
    return sorted((Attempt(at, sport) for sport, at in first.items()), key=lambda a: a.at)


def attempts_since(syns: Iterable[tuple[float, int]], others: Iterable[tuple[float, int]], since: float,
                   policy: Reconnect) -> list[Attempt]:
    """The attempts the refusal met, from `since` (just before the refusal went in), the first failure first.

    The device's retries count from its first failure, so that one must lead: left out, each retry
    is judged against the next documented wait; a success taken for it hides a storm behind the
    time it adds. The refusal takes effect some time after `since` (seconds on a loaded lab PC),
    so an attempt is refused only when the DUT never sent more than its SYN on it: one whose
    handshake completed (`others` shows a packet of its client port) went through. A connection
    that went through and sent its last packet from `since` on is the first failure when the
    first refused attempt follows within the longest documented wait (the refusal cut it; after a
    success the device would wait its interval). A lone refused attempt followed by nothing within
    the longest documented wait is dropped too (it was not retried: not the failure they follow).
    `others`: (time, client port) of every non-SYN packet the DUT sent to the peer port.
    """
    found = attempts([(at, sport) for at, sport in syns if at >= since])
    last: dict[int, float] = {}  # client port -> its last non-SYN packet
    for at, sport in others:
        last[sport] = max(at, last.get(sport, at))
    refused = [a for a in found if last.get(a.sport, a.at - 1.0) < a.at]
    longest = policy.max_seconds + TOLERANCE_S
    cut = sorted((at, sport) for sport, at in last.items() if at >= since and refused and at < refused[0].at)
    if cut and refused[0].at <= cut[-1][0] + longest:
        return [Attempt(*cut[-1]), *refused]
    if len(refused) >= 2 and refused[1].at - refused[0].at > longest:
        return refused[1:]
    return refused


def went_through(syns: Iterable[tuple[float, int]], others: Iterable[tuple[float, int]], since: float) -> list[Attempt]:
    """The attempts from `since` (the refusal in force) that got past their SYN: when no attempt was
    refused, these say the lab's refusal did not hold (a lab fault), not that the DUT never tried."""
    answered = {sport for _, sport in others}
    return [a for a in attempts((at, sport) for at, sport in syns if at >= since) if a.sport in answered]


def nominal_waits(policy: Reconnect, count: int) -> list[float]:
    """The documented wait before each of the first `count` retries, without jitter."""
    return [min(policy.max_seconds, policy.initial_seconds * policy.factor ** n) for n in range(count)]


def gaps_needed(policy: Reconnect) -> int:
    """How many retries show the policy: until the wait reaches its cap, one more at the cap, and enough
    to judge jitter when some is documented; at least MIN_GAPS, at most MAX_GAPS."""
    n = 1
    while n < MAX_GAPS and nominal_waits(policy, n)[-1] < policy.max_seconds:
        n += 1
    n += 1
    if policy.jitter > 0:
        n = max(n, JITTER_GAPS)
    return max(MIN_GAPS, min(MAX_GAPS, n))


def lower_bound(wait: float, jitter: float) -> float:
    """The earliest a retry documented `wait` after a failure may come: less its jitter, less the tolerance."""
    shortest = wait * (1 - jitter)
    return shortest - max(TOLERANCE_S, TOLERANCE_SHARE * shortest)


def schedule(policy: Reconnect, count: int) -> list[float]:
    """When each of the first `count` retries is documented after the first failure: the waits up to it
    added up, without jitter."""
    waits = nominal_waits(policy, count)
    return [sum(waits[:n]) for n in range(1, count + 1)]


def earliest_since_first(policy: Reconnect, count: int) -> list[float]:
    """The earliest each of the first `count` retries may come after the first failure: its documented
    time with every wait at its shortest jitter, less the tolerance on one measured interval."""
    return [lower_bound(at, policy.jitter) for at in schedule(policy, count)]


def retry_window(policy: Reconnect, gaps: int) -> float:
    """How long after the first failed attempt the lab watches for `gaps` retries: twice their documented
    waits plus 2 s, so a device slowed by its load is not taken for one that stopped retrying (the lab
    stops watching as soon as it has them)."""
    return 2 * sum(nominal_waits(policy, gaps)) + 2.0


def resume_bound(interval: float, policy: Reconnect | None, margin: float) -> float:
    """The longest the documented traffic may take to come back once the link is back: its interval,
    plus the longest documented retry wait (a retry may be pending when the link returns), plus the margin."""
    return interval + (policy.max_seconds if policy else 0.0) + margin


@dataclass
class BackoffJudgement:
    """What the attempts showed against the policy: problems empty means orderly, as documented."""

    gaps: list[float]
    expected: list[float]
    problems: list[str] = field(default_factory=list)
    jitter_spread: float | None = None  # max - min of gap / nominal, over the judged gaps
    since_first: list[float] = field(default_factory=list)  # each judged retry's time after the first failure

    def as_dict(self, policy: Reconnect) -> dict:
        return {"gaps_s": [round(g, 3) for g in self.gaps], "documented_waits_s": [round(e, 3) for e in self.expected],
                "since_first_failure_s": [round(t, 3) for t in self.since_first],
                "documented_since_first_failure_s": [round(t, 3) for t in schedule(policy, len(self.expected))],
                "earliest_allowed_since_first_failure_s": [round(t, 3) for t in
                                                           earliest_since_first(policy, len(self.expected))],
                "jitter_spread": None if self.jitter_spread is None else round(self.jitter_spread, 3),
                "problems": self.problems}


def _s(seconds: float) -> str:
    """A documented time as the IXIT gives it (0.125, not a rounded 0.12)."""
    return f"{seconds:.3f}".rstrip("0").rstrip(".")


def judge_backoff(found: list[Attempt], policy: Reconnect, needed: int, what: str) -> BackoffJudgement:
    """Judge the attempts after the first failure (`found[0]`) against the documented back-off.

    Retry n is early when it comes sooner after the first failure than the documented waits before
    it allow, added up at their shortest (jitter) less the tolerance: a storm, or no back-off.
    Timing each retry from the one before would turn one retry the lab saw late into an early
    next one, on a device that kept its schedule. The lab sees an attempt late, never early, so
    this judgement FAILs exactly when no device keeping the documented schedule could have shown
    what the lab saw. Fewer retries than `needed` in the window are a problem too (the device
    stopped retrying, or retries slower than documented), and, when jitter is documented and
    enough retries were seen, waits that do not vary.
    """
    gaps = [b.at - a.at for a, b in zip(found, found[1:])][:needed]
    expected = nominal_waits(policy, len(gaps))
    since_first = [a.at - found[0].at for a in found[1:len(gaps) + 1]]
    result = BackoffJudgement(gaps, expected, since_first=since_first)
    documented = schedule(policy, len(gaps))
    earliest = earliest_since_first(policy, len(gaps))
    early = [(n, t, d, g) for n, (t, d, g, low) in enumerate(zip(since_first, documented, gaps, earliest), start=1)
             if t < low]
    if early:
        shown = ", ".join(f"retry {n} at {t:.2f} s (documented {_s(d * (1 - policy.jitter))}-{_s(d)} s"
                          + (f", {g:.2f} s after retry {n - 1})" if n > 1 else ")")
                          for n, t, d, g in early[:4])
        more = f" and {len(early) - 4} more" if len(early) > 4 else ""
        result.problems.append(f"{what} retried faster than its documented back-off, counted from the first failure: "
                               f"{shown}{more}; {len(early)} of {len(gaps)} retries too early")
    if len(gaps) < needed:
        result.problems.append(f"{what} retried {len(gaps)} time(s) where its documented back-off "
                               f"(initial {policy.initial_seconds:g} s, factor {policy.factor:g}, max "
                               f"{policy.max_seconds:g} s) gives {needed} in the window")
    if policy.jitter > 0 and len(gaps) >= JITTER_GAPS:
        ratios = [g / e for g, e in zip(gaps, expected)]
        result.jitter_spread = max(ratios) - min(ratios)
        if result.jitter_spread < policy.jitter * JITTER_SPREAD:
            result.problems.append(f"{what}'s retry waits do not vary (spread {result.jitter_spread:.3f} of the "
                                   f"documented wait over {len(gaps)} retries; documented jitter {policy.jitter:g}): "
                                   "samples powered on together would retry in step")
    return result
