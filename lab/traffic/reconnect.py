"""Connection attempts seen on the wire, judged against the documented retry policy (5.9-1-2, 5.9-3-2).

A connection attempt is the first SYN of a client port (a retransmitted SYN is the same attempt).
The judgement needs only (time, client port) pairs, so it is tested without a network.
EN 303 645 5.9-3 asks for an orderly reconnection: a device that retries faster than its IXIT's
back-off (11-ComMech `reconnect`) makes the storm the provision is about, whatever its reasons.
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
    is judged against the next documented wait and found early. Two races at the refusal's start:
    a connection opened before it (its SYN unseen) whose next packet came at or after `since` was
    cut by it, and is the first failure when the first SYN follows within the longest documented
    wait; an attempt made while the refusal went in may have gone through, and is dropped when the
    next attempt comes later than any documented wait (a whole interval: it was not retried).
    `others`: (time, client port) of the DUT's non-SYN packets to the peer port.
    """
    found = attempts([(at, sport) for at, sport in syns if at >= since])
    longest = policy.max_seconds + TOLERANCE_S
    ports = {a.sport for a in found}
    broken = sorted((at, sport) for at, sport in others if at >= since and sport not in ports)
    if broken and found and broken[0][0] < found[0].at <= broken[0][0] + longest:
        return [Attempt(*broken[0]), *found]
    if len(found) >= 2 and found[1].at - found[0].at > longest:
        return found[1:]
    return found


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

    def as_dict(self, policy: Reconnect) -> dict:
        return {"gaps_s": [round(g, 3) for g in self.gaps], "documented_waits_s": [round(e, 3) for e in self.expected],
                "earliest_allowed_s": [round(lower_bound(e, policy.jitter), 3) for e in self.expected],
                "jitter_spread": None if self.jitter_spread is None else round(self.jitter_spread, 3),
                "problems": self.problems}


def judge_backoff(found: list[Attempt], policy: Reconnect, needed: int, what: str) -> BackoffJudgement:
    """Judge the attempts after the first failure (`found[0]`) against the documented back-off.

    A retry earlier than its documented wait (a storm, or no back-off) is a problem; so are fewer
    retries than `needed` in the window (the device stopped retrying, or retries slower than
    documented), and, when jitter is documented and enough retries were seen, waits that do not vary.
    """
    gaps = [b.at - a.at for a, b in zip(found, found[1:])][:needed]
    expected = nominal_waits(policy, len(gaps))
    result = BackoffJudgement(gaps, expected)
    early = [(n, g, e) for n, (g, e) in enumerate(zip(gaps, expected), start=1) if g < lower_bound(e, policy.jitter)]
    if early:
        shown = ", ".join(f"retry {n} after {g:.2f} s (documented {e * (1 - policy.jitter):.2f}-{e:.2f} s)"
                          for n, g, e in early[:4])
        more = f" and {len(early) - 4} more" if len(early) > 4 else ""
        result.problems.append(f"{what} retried faster than its documented back-off: {shown}{more}; "
                               f"{len(early)} of {len(gaps)} retries too early")
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
