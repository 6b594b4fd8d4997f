"""Every check ends within its documented time bound, however the server misbehaves.

The hostile corpus of :mod:`auditor.lab.hostile` is started once for the module; every
(check, server) case runs concurrently in one pass with ``--timeout`` 2 s, and each test then
asserts on its case: the elapsed time stays within the check's bound (a multiple of the
timeout plus a small constant for CPU work on two busy cores) and the outcome is an error, or
the finding the server deserves, never a clean pass that was not earned.

Bounds (T = timeout): tls <= 2 T (two preprobe ClientHellos) + 6 T (sslyze); http <= 2 T per
fetch chain, 8 T in all (plain chain, HTTPS chain, 4 T of admin paths); the crawl, and the
privacy check built on it, <= 10 T.
"""

from __future__ import annotations

import resource
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import Any

import pytest

from auditor.check import CheckContext, CheckOutcome
from auditor.lab.hostile import BEHAVIOURS, HostileLab
from auditor.targets import Target
from checks.http.check import HTTPCheck
from checks.privacy.check import PrivacyCheck
from checks.tls.check import TLSCheck
from checks.web.crawl import Crawl, crawl_site

T = 2.0
SLACK = 2.5  # seconds of CPU work beyond the network bound (two cores, ~40 cases at once)
BOUNDS = {"tls": 8 * T, "http": 8 * T, "crawl": 10 * T, "privacy": 10 * T}
# Raw (below-TLS) servers, the ones the tls check is run against; every server faces http.
TCP_SERVERS = [n for n, b in BEHAVIOURS.items() if b.layer == "tcp" and n != "answers_then_silent"]
HTTP_SERVERS = [n for n in BEHAVIOURS if n != "answers_then_silent"]
CRAWL_SERVERS = ["silent_after_hello", "header_trickle", "endless_body_slow", "endless_body_fast",
                 "endless_redirects", "slow_redirects", "gzip_bomb", "cookie_flood"]
PRIVACY_SERVERS = ["endless_body_slow", "header_trickle"]


@dataclass(frozen=True)
class Case:
    elapsed: float
    result: Any  # CheckOutcome or Crawl


def _context(params: dict[str, Any] | None = None) -> CheckContext:
    return CheckContext(timeout=T, deadline=time.monotonic() + 120, params=params)


def _run(kind: str, target: Target) -> Case:
    started = time.monotonic()
    result: Any
    if kind == "tls":
        result = TLSCheck().run(target, _context(dict(TLSCheck.parameters)))
    elif kind == "http":
        result = HTTPCheck().run(target, _context(dict(HTTPCheck.parameters)))
    elif kind == "privacy":
        result = PrivacyCheck().run(target, _context(dict(PrivacyCheck.parameters)))
    else:
        result = crawl_site(target, _context())
    return Case(time.monotonic() - started, result)


@pytest.fixture(scope="module")
def cases() -> Iterator[dict[tuple[str, str], Case]]:
    """Every case of the module, run at once. ``answers_then_silent`` answers its first
    connections only, so it has a lab of its own and faces the tls check alone."""
    import sslyze  # noqa: F401  # its first import takes a second or so: not a network wait

    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Headers trickled at 5 bytes/s: the status line is complete before the 2 T bound, the
    # header section never is (a cut header section must not pass for a response).
    with HostileLab(HTTP_SERVERS, first_address="127.0.12.1", trickle_interval=0.2) as lab, HostileLab(
        ["answers_then_silent"], first_address="127.0.13.1"
    ) as alone:
        jobs: dict[tuple[str, str], Callable[[], Case]] = {}
        plan = [("tls", TCP_SERVERS), ("http", HTTP_SERVERS), ("crawl", CRAWL_SERVERS), ("privacy", PRIVACY_SERVERS)]
        for kind, names in plan:
            for name in names:
                jobs[(kind, name)] = partial(_run, kind, lab[name].target())
        jobs[("tls", "answers_then_silent")] = partial(_run, "tls", alone["answers_then_silent"].target())
        with ThreadPoolExecutor(len(jobs)) as pool:
            futures = {key: pool.submit(job) for key, job in jobs.items()}
            results = {key: f.result() for key, f in futures.items()}
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) / 1024
    results[("memory", "peak_growth_mib")] = Case(grown_mib, None)
    yield results


def _within_bound(cases: dict[tuple[str, str], Case], kind: str, name: str, bound: float | None = None) -> Any:
    case = cases[(kind, name)]
    limit = (bound if bound is not None else BOUNDS[kind]) + SLACK
    assert case.elapsed <= limit, f"{kind} on {name} took {case.elapsed:.1f} s (bound {limit:g} s)"
    return case.result


def _ids(outcome: CheckOutcome) -> set[str]:
    return {f.id for f in outcome.findings}


# --------------------------------------------------------------------------- tls


@pytest.mark.parametrize("name", ["silent_after_accept", "silent_after_hello"])
def test_tls_silent_server_is_an_error_within_two_timeouts(cases: dict[tuple[str, str], Case], name: str) -> None:
    outcome = _within_bound(cases, "tls", name, 2 * T)
    assert outcome.findings == []
    assert outcome.error and f"no ServerHello within {T:g} s" in outcome.error


def test_tls_reset_mid_handshake_is_not_offered(cases: dict[tuple[str, str], Case]) -> None:
    outcome = _within_bound(cases, "tls", "reset_mid_handshake", 2 * T)
    assert _ids(outcome) == {"tls.not_offered"}


def test_tls_server_silent_after_connectivity_hits_the_sslyze_bound(cases: dict[tuple[str, str], Case]) -> None:
    """The probe and sslyze's connectivity test pass, every later handshake hangs: sslyze is
    stopped at 6 T and every command it could not finish is "could not test", not a pass."""
    outcome = _within_bound(cases, "tls", "answers_then_silent")
    assert outcome.error and "could not test" in outcome.error and "TLS time bound" in outcome.error
    assert "tls.not_offered" not in _ids(outcome)


# --------------------------------------------------------------------------- http


def _http(cases: dict[tuple[str, str], Case], name: str, bound: float | None = None) -> CheckOutcome:
    outcome = _within_bound(cases, "http", name, bound)
    assert isinstance(outcome, CheckOutcome)
    return outcome


@pytest.mark.parametrize(
    ("name", "bound", "reason"),
    [
        ("silent_after_accept", 2 * 2 * T, f"sent no response within {T:g}s"),
        ("silent_after_hello", 2 * 2 * T, f"sent no response within {T:g}s"),
        ("reset_mid_handshake", T, "closed the connection"),
        ("header_trickle", 2 * 2 * T, f"within {2 * T:g} s (the fetch time bound)"),
        ("endless_redirects", 2 * 2 * T, "too many redirects"),
        ("slow_redirects", 2 * 2 * T, f"within {2 * T:g} s after"),
        ("cookie_flood", T, "got more than 100 headers"),
    ],
)
def test_http_landing_page_never_reached_is_an_error(
    cases: dict[tuple[str, str], Case], name: str, bound: float, reason: str
) -> None:
    outcome = _http(cases, name, bound)
    assert outcome.error and outcome.error.startswith("cannot fetch https://")
    assert reason in outcome.error, outcome.error
    assert not _ids(outcome) & {"http.csp.missing", "http.clickjacking"}  # nothing judged on a page never read


def test_http_endless_slow_body_is_cut_and_reported_incomplete(cases: dict[tuple[str, str], Case]) -> None:
    outcome = _http(cases, "endless_body_slow")
    assert outcome.error and "page body incomplete (time budget" in outcome.error
    assert f"time budget of {3 * T:g} s spent)" in outcome.error  # the admin probe's 3 T (the CORS probes take 1 T)


@pytest.mark.parametrize("name", ["endless_body_fast", "gzip_bomb", "deflate_bomb", "brotli_bomb"])
def test_http_endless_or_bombed_body_is_capped_and_judged(cases: dict[tuple[str, str], Case], name: str) -> None:
    if ("http", name) not in cases:
        pytest.skip(f"{name} is not in this lab (brotli not importable)")
    outcome = _http(cases, name, 2 * T + 4 * T)
    assert {"http.hsts.missing", "http.csp.missing"} <= _ids(outcome)
    final = outcome.evidence["final"]
    assert final["status"] == 200


def test_decompression_bombs_do_not_blow_up_memory(cases: dict[tuple[str, str], Case]) -> None:
    # The brotli bomb alone is 256 MiB decoded, the gzip and deflate ones 64 MiB each.
    assert cases[("memory", "peak_growth_mib")].elapsed < 200


def test_http_huge_headers_are_refused_like_a_browser_would(cases: dict[tuple[str, str], Case]) -> None:
    outcome = _http(cases, "huge_headers", 2 * T)
    assert outcome.error and "over the 256 KiB that browsers accept" in outcome.error
    assert outcome.findings == []


# --------------------------------------------------------------------------- crawl and privacy


def _crawl(cases: dict[tuple[str, str], Case], name: str, bound: float | None = None) -> Crawl:
    crawl = _within_bound(cases, "crawl", name, bound)
    assert isinstance(crawl, Crawl)
    return crawl


def test_crawl_of_endless_slow_pages_stops_at_its_bound(cases: dict[tuple[str, str], Case]) -> None:
    crawl = _crawl(cases, "endless_body_slow")
    assert crawl.stopped and crawl.stopped.startswith(f"crawl time bound spent ({10 * T:g} s")
    assert crawl.pages and all(p.truncated and p.body_error for p in crawl.pages)


@pytest.mark.parametrize(
    ("name", "kind"),
    [("silent_after_hello", "timeout"), ("header_trickle", "timeout"), ("endless_redirects", "too_many"),
     ("slow_redirects", "timeout"), ("cookie_flood", "protocol")],
)
def test_crawl_records_unreachable_landing_pages(cases: dict[tuple[str, str], Case], name: str, kind: str) -> None:
    crawl = _crawl(cases, name, 2 * 2 * T)
    assert crawl.pages == []
    assert [f["kind"] for f in crawl.failures] == [kind, kind]  # the HTTPS page and its http:// twin


@pytest.mark.parametrize("name", ["endless_body_fast", "gzip_bomb"])
def test_crawl_caps_endless_and_bombed_pages(cases: dict[tuple[str, str], Case], name: str) -> None:
    crawl = _crawl(cases, name, 2 * T)
    assert crawl.pages and all(p.truncated and p.size <= crawl.bounds.page_bytes for p in crawl.pages)


@pytest.mark.parametrize("name", PRIVACY_SERVERS)
def test_privacy_check_ends_within_its_bound(cases: dict[tuple[str, str], Case], name: str) -> None:
    outcome = _within_bound(cases, "privacy", name)
    assert isinstance(outcome, CheckOutcome)
