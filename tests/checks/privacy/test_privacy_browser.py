"""The privacy check's browser mode on lab sites built the way script-heavy sites are (127.0.8.20+).

Each site yields exactly its planted id in browser mode and nothing in static mode (the server's
HTML holds none of it); the compliant site with a banner that honours refusal yields none.
One ``auditor scan --browser`` runs end to end; without Chromium the check is an error that
says how to install it.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from auditor.check import CheckContext, CheckOutcome
from auditor.lab.browser_sites import BROWSER_PRIVACY_SITES
from auditor.lab.sites import Lab, RunningSite
from auditor.targets import Resolver, make_target
from checks.privacy.check import PrivacyCheck

LAB_FIRST = "127.0.8.20"
PARAMS = {"privacy.browser_pages": 6, "privacy.browser_page_seconds": 15, "privacy.browser_total_seconds": 60}

pytestmark = pytest.mark.skipif(not os.path.exists("/usr/bin/chromium"), reason="Debian chromium not installed")


@pytest.fixture(scope="module")
def plab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    lab = Lab(tmp_path_factory.mktemp("privacy-browser-lab"), BROWSER_PRIVACY_SITES, first_address=LAB_FIRST)
    lab.start()
    yield lab
    lab.stop()


def run(lab: Lab, site: RunningSite, browser: bool, ca_file: str | None = "lab", **options: Any) -> CheckOutcome:
    resolver = Resolver(lab.resolve_args, allow_dns=False)
    ca_file = str(lab.ca_file) if ca_file == "lab" else ca_file
    # Only the SPA's route and the script-built form are past the landing page (6th and 2nd crawled).
    pages = {"brp-spa": 6, "brp-script-form": 2}.get(site.spec.name, 1)
    ctx = CheckContext(timeout=5, deadline=time.monotonic() + 120, resolver=resolver, ca_file=ca_file,
                       params={**PARAMS, "privacy.browser_pages": pages}, options={"browser": browser, **options})
    return PrivacyCheck().run(make_target(site.url, resolver), ctx)


@pytest.fixture(scope="module")
def outcomes(plab: Lab) -> dict[str, tuple[CheckOutcome, CheckOutcome]]:
    def both(site: RunningSite) -> tuple[CheckOutcome, CheckOutcome]:
        return run(plab, site, False), run(plab, site, True)

    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(both, plab.sites))
    return {site.spec.name: r for site, r in zip(plab.sites, results, strict=True)}


@pytest.mark.parametrize("spec", BROWSER_PRIVACY_SITES, ids=[s.name for s in BROWSER_PRIVACY_SITES])
def test_each_site_yields_exactly_its_ids_in_browser_mode_only(outcomes: dict[str, Any], spec: Any) -> None:
    static, browser = outcomes[spec.name]
    assert static.error is None and browser.error is None, browser.error
    assert {f.id for f in static.findings} == set(), [f.evidence for f in static.findings]
    assert {f.id for f in browser.findings} == set(spec.expect), [f.evidence for f in browser.findings]
    ev = browser.evidence["browser"]
    assert ev["session"]["killed"] is None and ev["session"]["other_hosts"] == "refused"
    assert ev["pages"] and ev["pages"][0]["status"] == 200


def test_runtime_evidence_says_so(outcomes: dict[str, Any]) -> None:
    tracker = next(f for f in outcomes["brp-tag-manager"][1].findings if f.id == "privacy.tracker.before_consent")
    assert "www.google-analytics.com" in tracker.evidence and "run time" in tracker.evidence
    cookie = outcomes["brp-script-cookie"][1].findings[0]
    assert "_ga" in cookie.evidence and "set by script" in cookie.evidence
    form = outcomes["brp-script-form"][1].evidence["forms"]
    assert any(f.get("seen_by", "").startswith("browser") and f["method"] == "GET" for f in form)


def test_consent_visits_compared(outcomes: dict[str, Any]) -> None:
    good = outcomes["brp-good"][1].evidence["browser"]
    assert good["banner"]["accept"]["text"] == "Đồng ý" and good["banner"]["refuse"]["text"] == "Từ chối"
    visits = {v["choice"]: v for v in good["consent_visits"]}
    assert visits["refuse"]["clicked"] and visits["accept"]["clicked"]
    after_refuse = {r["host"] for r in visits["refuse"]["requests"] if r["phase"] == "after-refuse"}
    after_accept = {r["host"] for r in visits["accept"]["requests"] if r["phase"] == "after-accept"}
    # The honouring banner: accepting loads analytics, refusing does not.
    assert "www.google-analytics.com" in after_accept and "www.google-analytics.com" not in after_refuse
    ignored = next(iter(outcomes["brp-refusal-ignored"][1].findings))
    assert "www.google-analytics.com" in ignored.evidence and "_ga" in ignored.evidence
    small = next(iter(outcomes["brp-small-refuse"][1].findings))
    assert "link" in small.evidence


def test_without_chromium_the_check_says_how_to_install(plab: Lab) -> None:
    outcome = run(plab, plab.site("brp-good"), True, chromium="/nonexistent/chromium")
    assert outcome.error and "apt-get install -y chromium" in outcome.error


def test_a_site_the_browser_cannot_render_is_a_check_error(plab: Lab) -> None:
    # Without --ca-file the lab's certificate is trusted by nobody: the crawl (which does not verify,
    # the tls check judges certificates) reads pages, the browser cannot. Untested is not a pass.
    outcome = run(plab, plab.site("brp-good"), True, ca_file=None)
    assert outcome.error and "no page could be rendered" in outcome.error and "CERT" in outcome.error.upper()


def test_pages_the_browser_did_not_reach_make_the_check_an_error(plab: Lab) -> None:
    # A site time bound too short for even the first page: nothing was rendered, so the run is
    # incomplete, and an incomplete browser run is a check error (untested is not a pass).
    resolver = Resolver(plab.resolve_args, allow_dns=False)
    site = plab.site("brp-spa")
    ctx = CheckContext(timeout=5, deadline=time.monotonic() + 120, resolver=resolver, ca_file=str(plab.ca_file),
                       params={**PARAMS, "privacy.browser_total_seconds": 2.5}, options={"browser": True})
    outcome = PrivacyCheck().run(make_target(site.url, resolver), ctx)
    assert outcome.error and outcome.error.startswith("browser mode incomplete: browser time bound spent after 0 of")
    assert outcome.evidence["browser"]["incomplete"]


def test_cli_scan_browser_end_to_end(plab: Lab, tmp_path: Any) -> None:
    import subprocess
    import sys

    site = plab.site("brp-tag-manager")
    args = [sys.executable, "-m", "auditor", "scan", site.url, "--checks", "privacy", "--browser", "--format", "json",
            "--ca-file", str(plab.ca_file), "--db", str(tmp_path / "s.db"), "--no-dns"]
    for r in plab.resolve_args:
        args += ["--resolve", r]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    result = data["results"][0] if isinstance(data, dict) and "results" in data else data[0]
    ids = {f["id"] for f in result["findings"]}
    assert "privacy.tracker.before_consent" in ids


def _chromium_child(pid: int) -> int | None:
    """The pid of a Chromium the process ``pid`` started, if one runs."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as fh:
                stat = fh.read()
        except OSError:
            continue
        comm = stat[stat.find(b"(") + 1:stat.rfind(b")")]
        rest = stat[stat.rfind(b")") + 2:].split()
        if int(rest[1]) == pid and comm.startswith(b"chrom"):
            return int(entry)
    return None


def test_ctrl_c_of_auditor_scan_leaves_no_chromium(plab: Lab, tmp_path: Any) -> None:
    import signal
    import subprocess
    import sys

    from checks.web.browser.process import _group_processes

    site = plab.site("brp-good")
    args = [sys.executable, "-m", "auditor", "scan", site.url, "--checks", "privacy", "--browser",
            "--ca-file", str(plab.ca_file), "--db", str(tmp_path / "s.db"), "--no-dns"]
    for r in plab.resolve_args:
        args += ["--resolve", r]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        until = time.monotonic() + 60
        chromium = None
        while chromium is None and time.monotonic() < until and proc.poll() is None:
            chromium = _chromium_child(proc.pid)
            time.sleep(0.05)
        assert chromium is not None, "the scan never started Chromium"
        pgid = os.getpgid(chromium)
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
        assert proc.returncode != 0
        until = time.monotonic() + 10
        while _group_processes(pgid) and time.monotonic() < until:
            time.sleep(0.1)
        assert _group_processes(pgid) == [], "Chromium outlived Ctrl-C of auditor scan"
    finally:
        if proc.poll() is None:
            proc.kill()


AGREE = ("priv-good", "priv-tracker", "priv-cookie", "priv-third-party-host")


def test_browser_mode_agrees_with_static_mode_on_the_static_lab(tmp_path: Any) -> None:
    """On the static privacy lab (no scripts) browser mode yields the very same ids: a tag held back
    as text/plain stays held, an HTTP _ga cookie and a gtag.js tag are still found once."""
    from auditor.lab.privacy_sites import PRIVACY_SITES

    specs = [s for s in PRIVACY_SITES if s.name in AGREE]
    with Lab(tmp_path / "lab", specs, first_address="127.0.8.60") as lab:
        resolver = Resolver(lab.resolve_args, allow_dns=False)

        def one(site: RunningSite) -> tuple[str, set[str], set[str]]:
            ctx = CheckContext(timeout=5, deadline=time.monotonic() + 120, resolver=resolver,
                               ca_file=str(lab.ca_file), params={"privacy.browser_pages": 1},
                               options={"browser": True})
            outcome = PrivacyCheck().run(make_target(site.url, resolver), ctx)
            assert outcome.error is None, outcome.error
            return site.spec.name, set(site.spec.expect), {f.id for f in outcome.findings}

        with ThreadPoolExecutor(max_workers=2) as pool:
            for name, expected, got in pool.map(one, lab.sites):
                assert got == expected, name
