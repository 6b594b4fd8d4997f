"""Core: targets, resolver, policy scoring, engine bounds, storage round trip."""

from __future__ import annotations

import threading
import time

import pytest

import policies
from auditor.check import Check, CheckContext, CheckOutcome, Finding, FindingSpec, Severity
from auditor.errors import AuditorError, TargetError
from auditor.results import result_hash
from auditor.scanning import Auditor, ScanRequest
from auditor.targets import AddressPolicy, Resolver, Target, parse_resolve, parse_target

# -- targets ------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("text", "url", "host", "port", "http_port"),
    [
        ("portal.example.gov.vn", "https://portal.example.gov.vn/", "portal.example.gov.vn", 443, 80),
        ("https://Portal.Example.gov.vn:8443/a?b=1", "https://portal.example.gov.vn:8443/a?b=1",
         "portal.example.gov.vn", 8443, 80),
        ("http://shop.example.vn:8080/", "https://shop.example.vn/", "shop.example.vn", 443, 8080),
        ("https://bộ.vn/", "https://xn--b-8xm.vn/", "xn--b-8xm.vn", 443, 80),
        ("127.0.0.5", "https://127.0.0.5/", "127.0.0.5", 443, 80),
    ],
)
def test_parse_target(text: str, url: str, host: str, port: int, http_port: int) -> None:
    got = parse_target(text)
    assert (got[0], got[1], got[2], got[4]) == (url, host, port, http_port)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("ftp://example.vn/", "unsupported URL scheme"),
        ("https://user:pw@example.vn/", "credentials"),
        ("https://exa mple.vn/", "white space"),
        ("https://example.vn:99999/", "invalid URL"),
        ("https:///path", "no host"),
        ("https://ex$ample.vn/", "invalid host name"),
    ],
)
def test_parse_target_rejects(text: str, message: str) -> None:
    with pytest.raises(TargetError, match=message):
        parse_target(text)


def test_resolver_overrides_and_no_dns() -> None:
    r = Resolver(["portal.example.gov.vn:443:127.0.0.5", "other.test:*:127.0.0.6"], allow_dns=False)
    assert r.resolve("portal.example.gov.vn", 443) == "127.0.0.5"
    # An override for one port of a host also covers its other ports (never leaks to DNS).
    assert r.resolve("portal.example.gov.vn", 80) == "127.0.0.5"
    assert r.resolve("OTHER.test", 8443) == "127.0.0.6"
    assert r.resolve("127.0.0.9", 443) == "127.0.0.9"
    with pytest.raises(TargetError, match="DNS lookups are disabled"):
        r.resolve("unknown.invalid", 443)


def test_address_policy_refuses_private_ranges() -> None:
    strict = AddressPolicy(allow_private=False, allow_loopback=False, allow_link_local=False)
    r = Resolver(["a.test:443:127.0.0.5", "b.test:443:10.1.2.3", "c.test:443:169.254.1.1"],
                 allow_dns=False, policy=strict)
    for host in ("a.test", "b.test", "c.test"):
        with pytest.raises(TargetError, match="refused by address policy"):
            r.resolve(host, 443)


@pytest.mark.parametrize("spec", ["nohost", "h:abc:127.0.0.1", "h:443:not-an-ip", "h:70000:127.0.0.1"])
def test_bad_resolve_spec(spec: str) -> None:
    with pytest.raises(AuditorError):
        parse_resolve(spec)


# -- policy ---------------------------------------------------------------------------------

def _f(fid: str, sev: Severity) -> Finding:
    return Finding(id=fid, check="t", severity=sev, title=fid, evidence="")


def test_policy_scores_each_id_once_and_caps_grades() -> None:
    p = policies.load_policy()
    assert p.evaluate([]).grade == "A"
    assert p.evaluate([]).score == 100
    # Same id twice counts once: 100 - 5 = 95 -> A.
    v = p.evaluate([_f("x.m", Severity.MEDIUM), _f("x.m", Severity.MEDIUM)])
    assert (v.score, v.grade) == (95, "A")
    # One high: 85 would be B, but a high caps at C.
    v = p.evaluate([_f("x.h", Severity.HIGH)])
    assert (v.score, v.grade) == (85, "C")
    # One critical: 60 and F whatever the score.
    v = p.evaluate([_f("x.c", Severity.CRITICAL)])
    assert (v.score, v.grade) == (60, "F")
    # Floor at 0.
    v = p.evaluate([_f(f"x.c{i}", Severity.CRITICAL) for i in range(5)])
    assert v.score == 0
    # Bands: 100-4*5=80 -> B; 100-7*5=65 -> C; 100-10*5=50 -> D; 100-11*5=45 -> F.
    for n, grade in ((2, "A"), (4, "B"), (7, "C"), (10, "D"), (11, "F")):
        assert p.evaluate([_f(f"m{i}", Severity.MEDIUM) for i in range(n)]).grade == grade


def test_policy_directory_override(tmp_path) -> None:  # type: ignore[no-untyped-def]
    text = (policies.DEFAULT_DIR / "policy.yaml").read_text()
    text = text.replace('version: "2026.1"', 'version: "test.9"').replace(
        "severity_overrides: {}", "severity_overrides: {x.m: critical}")
    (tmp_path / "policy.yaml").write_text(text)
    p = policies.load_policy(tmp_path)
    assert p.version == "test.9"
    assert p.evaluate([_f("x.m", Severity.MEDIUM)]).grade == "F"
    (tmp_path / "policy.yaml").write_bytes("name: Chính sách".encode("windows-1258"))
    with pytest.raises(AuditorError, match="cannot read policy file"):
        policies.load_policy(tmp_path)
    (tmp_path / "policy.yaml").write_text("name: [unclosed")
    with pytest.raises(AuditorError, match="cannot read policy file"):
        policies.load_policy(tmp_path)
    with pytest.raises(AuditorError, match="policy directory not found"):
        policies.load_policy(tmp_path / "nope")


# -- engine ---------------------------------------------------------------------------------

SPEC = FindingSpec("probe.seen", Severity.LOW, "Probe saw the site", "why", "fix")


class SleepyCheck(Check):
    id = "sleepy"
    title = "sleeps"
    catalogue = (SPEC,)

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def run(self, target: Target, ctx: CheckContext) -> CheckOutcome:
        time.sleep(self.seconds if target.host != "fast.test" else 0)
        return CheckOutcome(findings=[Finding("probe.seen", self.id, Severity.LOW, "seen", target.host)])


class CrashingCheck(Check):
    id = "crashy"
    title = "crashes"

    def run(self, target: Target, ctx: CheckContext) -> CheckOutcome:
        raise RuntimeError("boom\nsecond line")


def _request(targets: list[str], checks: list[Check], **kw) -> ScanRequest:  # type: ignore[no-untyped-def]
    resolve = [f"{t}:*:127.0.0.{i + 20}" for i, t in enumerate(["slow.test", "fast.test", "a.test", "b.test"])]
    return ScanRequest(targets=targets, checks=checks, resolve=resolve, allow_dns=False, **kw)


def test_hanging_site_is_bounded_and_others_finish(db_url: str) -> None:
    auditor = Auditor(db=db_url)
    t0 = time.monotonic()
    done_at: dict[str, float] = {}
    results = auditor.scan(
        _request(["slow.test", "fast.test"], [SleepyCheck(30)], site_timeout=1.5, concurrency=2),
        on_result=lambda r: done_at.setdefault(r["host"], time.monotonic() - t0),
    )
    assert time.monotonic() - t0 < 10
    assert done_at["fast.test"] < 1.0
    slow, fast = results
    assert slow["checks"]["sleepy"]["status"] == "error"
    assert "site time bound" in slow["checks"]["sleepy"]["error"]
    assert slow["error"] and slow["grade"] is None
    assert fast["grade"] == "A" and fast["score"] == 99
    assert [f["id"] for f in fast["findings"]] == ["probe.seen"]


def test_sites_run_concurrently(db_url: str) -> None:
    auditor = Auditor(db=db_url)
    t0 = time.monotonic()
    results = auditor.scan(_request(["slow.test", "a.test", "b.test"], [SleepyCheck(1.0)], concurrency=3))
    assert time.monotonic() - t0 < 2.5, "three 1 s sites with concurrency 3 should take about 1 s"
    assert all(r["grade"] == "A" for r in results)


def test_crashing_plugin_is_a_check_error_not_a_crash(db_url: str) -> None:
    results = Auditor(db=db_url).scan(_request(["a.test"], [CrashingCheck(), SleepyCheck(0)]))
    r = results[0]
    assert r["checks"]["crashy"]["status"] == "error"
    assert r["checks"]["crashy"]["error"] == "internal error in check crashy: RuntimeError: boom"
    assert r["grade"] == "A"  # the other check still graded the site


def test_results_are_stored_and_shown_identically(db_url: str) -> None:
    auditor = Auditor(db=db_url)
    first = auditor.scan(_request(["a.test", "nowhere.invalid", "ftp://a.test/"], [SleepyCheck(0)]))
    ok, unresolvable, bad_scheme = first
    assert ok["scan_id"] and auditor.result_dict(ok["scan_id"]) == ok
    # An unresolvable host is stored as a failed scan of that site; a bad URL cannot be.
    assert unresolvable["scan_id"] and "cannot resolve nowhere.invalid" in unresolvable["error"]
    assert unresolvable["grade"] is None and unresolvable["score"] is None
    assert bad_scheme["scan_id"] is None and "unsupported URL scheme" in bad_scheme["error"]
    second = auditor.scan(_request(["a.test"], [SleepyCheck(0)]))[0]
    from auditor import storage

    with storage.session_scope(db_url) as s:
        hist = storage.history(s, "https://a.test/")
        assert [h.id for h in hist] == [second["scan_id"], ok["scan_id"]]
        assert hist[0].result_hash == result_hash(second)
        assert hist[0].policy_name == "vn-network-trust" and hist[0].tool_version


def test_memo_computes_once_across_threads() -> None:
    ctx = CheckContext()
    calls = []

    def compute() -> int:
        calls.append(1)
        time.sleep(0.2)
        return 42

    out: list[int] = []
    threads = [threading.Thread(target=lambda: out.append(ctx.memo("crawl", compute))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert out == [42] * 4 and len(calls) == 1


def test_a_storage_failure_does_not_leave_the_scan_running(db_url: str) -> None:
    class BrokenStore(Auditor):
        def _record_finish(self, res, recorded):  # type: ignore[no-untyped-def]
            raise RuntimeError("disk full")

    r = BrokenStore(db=db_url).scan(_request(["a.test"], [SleepyCheck(0)]))[0]
    assert r["scan_id"] and r["grade"] is None
    assert r["error"] == "could not store the result: RuntimeError: disk full"
    from auditor import storage
    from auditor.models import Scan

    with storage.session_scope(db_url) as s:
        scan = s.get(Scan, r["scan_id"])
        assert scan is not None and scan.status == "failed" and scan.finished_at is not None


class WatchingCheck(Check):
    """Reads, from inside the scan, how the database sees the scan of its target."""

    id = "watching"
    title = "watches the store"
    catalogue = (SPEC,)

    def __init__(self, db: str) -> None:
        self.db = db
        self.seen: list[tuple[str, object]] = []

    def run(self, target: Target, ctx: CheckContext) -> CheckOutcome:
        from auditor import storage

        with storage.session_scope(self.db) as s:
            scan = storage.latest_scan(s, target.url, statuses=None)
            assert scan is not None
            self.seen.append((scan.status, scan.finished_at))
        return CheckOutcome(findings=[Finding("probe.seen", self.id, Severity.LOW, "seen", target.host)])


def test_a_scan_is_running_during_its_checks_and_finished_after(db_url: str) -> None:
    from auditor import storage

    watcher = WatchingCheck(db_url)
    r = Auditor(db=db_url).scan(_request(["a.test"], [watcher]))[0]
    assert watcher.seen == [("running", None)]
    with storage.session_scope(db_url) as s:
        scan = storage.get_scan(s, r["scan_id"])
        assert scan is not None and scan.status == "completed" and scan.finished_at is not None
        assert scan.counts["low"] == 1 and scan.result_hash == result_hash(r)
        assert [c.check for c in storage.check_runs_of(s, r["scan_id"])] == ["watching"]
        assert [f.finding_id for f in storage.findings_of(s, r["scan_id"])] == ["probe.seen"]
        assert storage.scan_result(s, r["scan_id"]) == r
        assert storage.assessed_urls(s) == {"https://a.test/"}
        assert storage.scan_result(s, 10_000) is None


def test_mark_scan_failed_finishes_a_running_scan_with_its_reason(db_url: str) -> None:
    from datetime import UTC, datetime

    from auditor import storage

    stamp = storage.ScanStamp(policy_name="p", policy_version="1", options={})
    with storage.session_scope(db_url) as s:
        scan = storage.start_scan(s, "https://a.test/", "a.test", 443, stamp, started_at=datetime.now(UTC))
        assert scan.id is not None and scan.status == "running" and scan.tool_version
        scan_id = scan.id
    with storage.session_scope(db_url) as s:
        assert storage.mark_scan_failed(s, scan_id, "x" * 3000)
        assert not storage.mark_scan_failed(s, scan_id + 1, "gone")
    with storage.session_scope(db_url) as s:
        scan = storage.get_scan(s, scan_id)
        assert scan is not None and scan.status == "failed" and scan.error == "x" * 2000
        assert scan.finished_at is not None and scan.grade is None


class PickyCheck(Check):
    """Applies only to hosts under ``portal.test``; its ``applies`` of one host crashes."""

    id = "picky"
    title = "picky"
    catalogue = (SPEC,)

    def applies(self, target: Target, ctx: CheckContext) -> bool:
        if target.host == "crash.test":
            raise RuntimeError("bug in applies")
        return target.host.endswith("portal.test")

    def run(self, target: Target, ctx: CheckContext) -> CheckOutcome:
        return CheckOutcome()


def test_a_check_that_does_not_apply_stays_out_of_a_default_scan_but_runs_when_named() -> None:
    from auditor.engine import ScanOptions, scan_site

    resolver = Resolver([f"{h}:*:127.0.0.20" for h in
                        ("shop.test", "a.portal.test", "crash.test")], allow_dns=False)
    checks: list[Check] = [PickyCheck(), SleepyCheck(0)]
    default = ScanOptions(site_timeout=5)
    assert set(scan_site("https://shop.test/", checks, resolver, default).checks) == {"sleepy"}
    assert set(scan_site("https://a.portal.test/", checks, resolver, default).checks) == {"picky", "sleepy"}
    # a crashing applies() runs the check rather than hiding it
    assert set(scan_site("https://crash.test/", checks, resolver, default).checks) == {"picky", "sleepy"}
    named = ScanOptions(site_timeout=5, named_checks=True)
    assert set(scan_site("https://shop.test/", checks, resolver, named).checks) == {"picky", "sleepy"}


def test_a_default_scan_is_complete_without_the_checks_that_did_not_apply(db_url: str) -> None:
    """A run that names no checks asks for every check that fits the site: one that does not
    apply (a portal check on a shop) is not missing from the stored assessment."""

    class Installed(Auditor):
        def select_checks(self, names):  # type: ignore[no-untyped-def]
            return [PickyCheck(), SleepyCheck(0)] if names is None else super().select_checks(names)

    auditor = Installed(db=db_url)
    request = ScanRequest(targets=["https://shop.test/", "https://a.portal.test/"], checks=None,
                          resolve=["shop.test:*:127.0.0.20", "a.portal.test:*:127.0.0.20"], allow_dns=False)
    shop, portal = auditor.scan(request)
    assert set(shop["checks"]) == {"sleepy"}
    assert shop["assessment"] == {"complete": True, "incomplete_checks": []}
    assert set(portal["checks"]) == {"picky", "sleepy"} and portal["assessment"]["complete"]
    # what is stored says the same when read back
    assert auditor.result_dict(shop["scan_id"])["assessment"]["complete"]
