"""The lab's own path to the manufacturer's hosts: whose fault is a site that does not answer?

Like the bench health check: before a silent site is held against the product, the lab proves its
own way out works. The inventory's `path_check` is an https URL the lab trusts to be up; when it
answers (any HTTP status), the lab's network, name resolution and trust store work, so the
manufacturer's host not answering is the product's finding (DutError). Without a `path_check`, or
when it does not answer either, the failure is the lab's (LabFault, INCONCLUSIVE).
"""

from __future__ import annotations

import time
from dataclasses import replace

from lab.errors import CertlabError, DutError, NetworkFault
from lab.web.fetch import HttpTarget, NetworkFailure, _exchange, hosts_of


def path_works(target: HttpTarget) -> tuple[bool | None, str]:
    """(True, why) when `target.path_check` answers, (False, why) when it does not, (None, why) unset."""
    if not target.path_check:
        return None, "the inventory gives no path_check URL to tell a lab fault from a silent site"
    probe = replace(target, allowed_hosts=hosts_of([target.path_check]), hosts_field="the bench's path_check")
    try:
        page = fetch_raw(probe, target.path_check)
    except NetworkFailure as failure:
        return False, f"the lab's path check {target.path_check} does not answer either ({failure.cause})"
    except (DutError, CertlabError) as exc:  # it answered something: the way out works
        return True, f"the lab's path check {target.path_check} answered ({exc})"
    return True, f"the lab's path check {target.path_check} answered (HTTP {page})"


def fetch_raw(target: HttpTarget, url: str) -> int:
    """The status of one GET of `url` (no redirect followed); a NetworkFailure is not judged here."""
    return _exchange(target, "GET", url, {}, None, time.monotonic() + target.timeout).status


def judge_network_failure(target: HttpTarget, failure: NetworkFailure) -> Exception:
    """The exception a caller raises for `failure`: DutError when the lab's path works, else LabFault."""
    works, why = path_works(target)
    if works:
        return DutError(f"{failure.url}: the manufacturer's host does not answer ({failure.cause}) while {why}")
    return NetworkFault(f"{failure.url}: {failure.cause}; {why}", bench=target.bench)
