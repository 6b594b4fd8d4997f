"""The public registry: registry.json/CSV contents, escaping, and the page in real Chromium.

Chromium runs headless from file:// with no network (DNS disabled by host-resolver rules,
background networking off); filters are set through the URL fragment and read back from the
DOM after the page's own script ran.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from bs4 import BeautifulSoup
from project_paths import PROJECT

from auditor import storage
from auditor.models import Certificate, InformationSystem, Scan, Site
from reports.registry_site import build_registry, csv_safe
from scheduler.admin import add_site, enrolled_in

ROOT = PROJECT
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
NOW = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)

HOSTILE_SYSTEM = '<img src=x onerror="document.title=\'pwned\'">'
HOSTILE_OWNER = '=HYPERLINK("http://evil.example/","click")</td><h1 id="injected">x</h1>'
HOSTILE_URL = "https://evil.example.test/<script>document.title='pwned'</script>"


def _site(session: Any, url: str, system_id: int | None) -> Site:
    host = url.split("/")[2]
    site = Site(url=url, host=host, port=443, system_id=system_id)
    session.add(site)
    session.flush()
    return site


def _scan(session: Any, site: Site, grade: str | None, days_ago: float, status: str = "completed") -> Scan:
    started = NOW - timedelta(days=days_ago)
    scan = Scan(site_id=site.id or 0, url=site.url, host=site.host, port=443, status=status, grade=grade,
                score={"A": 100, "B": 85, "F": 20}.get(grade or ""), started_at=started,
                finished_at=started + timedelta(seconds=5), system_id=site.system_id)
    session.add(scan)
    session.flush()
    return scan


def _cert(session: Any, site: Site, scan: Scan, serial: str, status: str, expires_in_days: int) -> Certificate:
    issued = NOW - timedelta(days=30)
    payload = {"v": 1, "serial": serial, "site": site.url, "grade": scan.grade, "kid": "0123456789abcdef"}
    cert = Certificate(serial=serial, site_id=site.id or 0, system_id=site.system_id, scan_id=scan.id or 0,
                       issued_at=issued, expires_at=NOW + timedelta(days=expires_in_days), grade=scan.grade or "",
                       status=status, payload=payload, signature="c2lnbmF0dXJl")
    session.add(cert)
    session.flush()
    return cert


def populate(db: str, *, hostile: bool) -> None:
    with storage.session_scope(db) as s:
        hn = InformationSystem(name="Cổng thông tin điện tử Hà Nội", owner="UBND thành phố Hà Nội",
                               contact="cntt@hanoi.example", declared_level=3)
        dvc = InformationSystem(name="Cổng dịch vụ công Bộ Thử nghiệm", owner="Bộ Thử nghiệm",
                                contact="ttcntt@bo.example", computed_level=4)
        s.add(hn)
        s.add(dvc)
        s.flush()
        a = _site(s, "https://hanoi.example.gov.vn/", hn.id)
        _cert(s, a, _scan(s, a, "A", 1), "TNM-2026-AAAAAAAAAA", "valid", 300)
        b = _site(s, "https://dichvucong.hanoi.example.gov.vn/", hn.id)
        _scan(s, b, "A", 40)
        _cert(s, b, _scan(s, b, "F", 2), "TNM-2026-BBBBBBBBBB", "suspended", 200)
        c = _site(s, "https://dvc.bo.example.gov.vn/", dvc.id)
        _cert(s, c, _scan(s, c, "B", 3), "TNM-2025-CCCCCCCCCC", "valid", -5)  # validity over
        _site(s, "https://tracuu.bo.example.gov.vn/", dvc.id)  # never assessed
        d = _site(s, "https://revoked.bo.example.gov.vn/", dvc.id)
        _cert(s, d, _scan(s, d, "A", 6), "TNM-2026-DDDDDDDDDD", "revoked", 100)
        adhoc = _site(s, "https://adhoc.example.test/", None)  # scanned ad hoc: not published
        _scan(s, adhoc, "B", 1)
        if hostile:
            evil = InformationSystem(name=HOSTILE_SYSTEM, owner=HOSTILE_OWNER, contact="x@evil.example")
            s.add(evil)
            s.flush()
            _site(s, HOSTILE_URL, evil.id)
        # A failed scan is not an assessment.
        f = _site(s, "https://down.bo.example.gov.vn/", dvc.id)
        _scan(s, f, None, 1, status="failed")
    add_site(db, "https://enrolled.example.test/", "interval:86400")  # enrolled by hand, no system


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    base = tmp_path_factory.mktemp("registry")
    db = f"sqlite:///{base / 'audit.db'}"
    populate(db, hostile=True)
    out = base / "site"
    result = build_registry(db, out, enrolled=enrolled_in(db), key_path=str(base / "no-key.pem"), now=NOW)
    assert result.sites == 8 and result.assessed == 4
    yield out


def chromium(url: str, profile: Path, *, screenshot: Path | None = None, size: str = "1400,900") -> str:
    if not Path(CHROMIUM).exists():
        pytest.fail("Chromium is needed for the registry page tests: apt-get install -y chromium")
    args = [
        CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-extensions",
        "--disable-default-apps", "--hide-scrollbars", "--mute-audio",
        "--host-resolver-rules=MAP * ~NOTFOUND",  # no DNS, ever
        f"--user-data-dir={profile}",
    ]
    args += [f"--screenshot={screenshot}", f"--window-size={size}"] if screenshot else ["--dump-dom"]
    proc = subprocess.run([*args, url], capture_output=True, text=True, timeout=90)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def visible_urls(dom: str) -> list[str]:
    soup = BeautifulSoup(dom, "html.parser")
    assert soup.body is not None and soup.body.get("data-filtered") == "1", "the page script did not run"
    rows = soup.select("#registry tbody tr")
    return [tr.select_one("td.url").get_text(strip=True) for tr in rows if not tr.has_attr("hidden")]


# -- data files ----------------------------------------------------------------------------------


def test_registry_json_is_exactly_the_published_contract(built: Path) -> None:
    doc = json.loads((built / "registry.json").read_text(encoding="utf-8"))
    assert set(doc) == {"generated_at", "sites"} and doc["generated_at"] == "2026-11-23T10:00:00Z"
    keys = {"url", "system", "owner", "level", "assessed", "last_assessed_at", "grade", "certificate", "assessment"}
    assert all(set(e) == keys for e in doc["sites"])
    by_url = {e["url"]: e for e in doc["sites"]}
    assert "https://adhoc.example.test/" not in by_url  # ad hoc scans are not the inventory
    assert by_url["https://hanoi.example.gov.vn/"] == {
        "url": "https://hanoi.example.gov.vn/", "system": "Cổng thông tin điện tử Hà Nội",
        "owner": "UBND thành phố Hà Nội", "level": 3, "assessed": True,
        "last_assessed_at": "2026-11-22T10:00:05Z", "grade": "A",
        "certificate": {"serial": "TNM-2026-AAAAAAAAAA", "status": "valid", "expires": "2027-09-19T10:00:00Z"},
        "assessment": {"complete": True, "incomplete_checks": []},
    }
    # The latest completed scan counts (F), and the live certificate is the suspended one.
    dvc = by_url["https://dichvucong.hanoi.example.gov.vn/"]
    assert dvc["grade"] == "F" and dvc["certificate"]["status"] == "suspended"
    assert by_url["https://dvc.bo.example.gov.vn/"]["certificate"]["status"] == "expired"
    assert by_url["https://dvc.bo.example.gov.vn/"]["level"] == 4  # computed level when none declared
    assert by_url["https://revoked.bo.example.gov.vn/"]["certificate"]["status"] == "revoked"
    for url in ("https://tracuu.bo.example.gov.vn/", "https://down.bo.example.gov.vn/"):
        assert by_url[url] | {"url": None} == {
            "url": None, "system": "Cổng dịch vụ công Bộ Thử nghiệm", "owner": "Bộ Thử nghiệm", "level": 4,
            "assessed": False, "last_assessed_at": None, "grade": None, "certificate": None, "assessment": None,
        }
    enrolled = by_url["https://enrolled.example.test/"]
    assert enrolled["system"] is None and enrolled["assessed"] is False
    assert by_url[HOSTILE_URL]["system"] == HOSTILE_SYSTEM  # stored as data, unchanged


def test_registry_csv_and_certificate_files(built: Path) -> None:
    raw = (built / "registry.csv").read_bytes()
    assert raw.startswith("\ufeff".encode())
    table = list(csv.DictReader(io.StringIO(raw.decode("utf-8-sig"))))
    assert len(table) == 8
    row = next(r for r in table if r["url"] == "https://hanoi.example.gov.vn/")
    assert row["system"] == "Cổng thông tin điện tử Hà Nội" and row["certificate_status"] == "valid"
    assert row["assessed"] == "yes" and row["certificate_serial"] == "TNM-2026-AAAAAAAAAA"
    hostile = next(r for r in table if r["system"] == HOSTILE_SYSTEM)
    assert hostile["owner"] == "'" + HOSTILE_OWNER  # a spreadsheet shows it as text, never runs it
    assert csv_safe("@SUM(1)") == "'@SUM(1)" and csv_safe("Hà Nội") == "Hà Nội"

    cert = json.loads((built / "certificates" / "TNM-2026-BBBBBBBBBB.json").read_text())
    assert cert["status"] == "suspended" and cert["token"].startswith("TNM1.")
    assert cert["site"] == "https://dichvucong.hanoi.example.gov.vn/"
    assert sorted(p.name for p in (built / "certificates").iterdir()) == [
        "TNM-2025-CCCCCCCCCC.json", "TNM-2026-AAAAAAAAAA.json", "TNM-2026-BBBBBBBBBB.json",
        "TNM-2026-DDDDDDDDDD.json",
    ]
    assert not (built / "issuer.pem").exists()  # no key yet: nothing to publish


def test_hostile_values_are_escaped_in_the_html_source(built: Path) -> None:
    html = (built / "index.html").read_text(encoding="utf-8")
    assert "<img src=x" not in html and '<h1 id="injected">' not in html
    assert "<script>document.title" not in html
    assert "&lt;img src=x onerror=" in html and "&lt;/td&gt;&lt;h1" in html
    # Only the page's own script, allowed by hash; nothing else may run.
    assert html.count("<script>") == 1
    assert "script-src 'sha256-" in html.replace("&#39;", "'")
    assert 'href="certificates/TNM-2026-AAAAAAAAAA.json"' in html


# -- the page in Chromium ---------------------------------------------------------------------------


def test_page_renders_and_filters_in_chromium(built: Path, tmp_path: Path) -> None:
    base = (built / "index.html").resolve().as_uri()
    views = {
        "all": "",
        "not-assessed": "#assessed=no",
        "suspended": "#status=suspended",
        "search": "#q=ha%20noi",  # no diacritics typed, "Hà Nội" found
        "level4-none": "#level=4&status=none",
        "grade-a-valid": "#grade=A&status=valid",
        "garbage": "#q=%E0%A4%A&status=%ZZ&bogus=1",
    }
    with ThreadPoolExecutor(max_workers=4) as pool:
        doms = dict(zip(views, pool.map(
            lambda item: chromium(base + item[1], tmp_path / f"profile-{item[0]}"), views.items()
        ), strict=True))

    everything = visible_urls(doms["all"])
    assert len(everything) == 8
    assert set(visible_urls(doms["not-assessed"])) == {
        "https://tracuu.bo.example.gov.vn/", "https://down.bo.example.gov.vn/",
        "https://enrolled.example.test/", HOSTILE_URL,
    }
    assert visible_urls(doms["suspended"]) == ["https://dichvucong.hanoi.example.gov.vn/"]
    assert set(visible_urls(doms["search"])) == {
        "https://hanoi.example.gov.vn/", "https://dichvucong.hanoi.example.gov.vn/",
    }
    assert set(visible_urls(doms["level4-none"])) == {
        "https://tracuu.bo.example.gov.vn/", "https://down.bo.example.gov.vn/",
    }
    assert visible_urls(doms["grade-a-valid"]) == ["https://hanoi.example.gov.vn/"]
    assert len(visible_urls(doms["garbage"])) == 8  # a malformed fragment is ignored, not an error

    soup = BeautifulSoup(doms["suspended"], "html.parser")
    assert soup.select_one("#shown").get_text() == "1"
    # Hostile values stayed text in the live DOM: no element was injected, the title is intact.
    full = BeautifulSoup(doms["all"], "html.parser")
    assert full.find("img") is None and full.find(id="injected") is None
    assert full.title is not None and full.title.get_text().startswith("Danh bạ Tín nhiệm mạng")
    assert len(full.find_all("script")) == 1
    assert HOSTILE_SYSTEM in full.get_text() and HOSTILE_URL in full.get_text()


def test_registry_screenshot_renders(tmp_path: Path) -> None:
    """A clean sample registry rendered to PNG by Chromium (kept as docs/samples/registry.png
    when AUDITOR_WRITE_SAMPLES=1)."""
    from PIL import Image

    db = f"sqlite:///{tmp_path / 'audit.db'}"
    populate(db, hostile=False)
    out = tmp_path / "site"
    build_registry(db, out, enrolled=enrolled_in(db), key_path=str(tmp_path / "no-key.pem"), now=NOW)
    png = tmp_path / "registry.png"
    chromium((out / "index.html").resolve().as_uri(), tmp_path / "profile", screenshot=png, size="1440,820")
    image = Image.open(png).convert("RGB")
    assert image.size == (1440, 820)
    colours = image.getcolors(maxcolors=1 << 20) or []
    assert len(colours) > 50  # text, badges and table, not a blank page
    # The header band of the table is the page's dark blue: the stylesheet was applied.
    assert any(count > 2000 and rgb == (0x0B, 0x3A, 0x6E) for count, rgb in colours)
    if os.environ.get("AUDITOR_WRITE_SAMPLES") == "1":
        target = ROOT / "docs" / "samples" / "registry.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(png, target)


# -- CLI ---------------------------------------------------------------------------------------


def test_registry_build_command(tmp_path: Path, cli: Any) -> None:
    db = f"sqlite:///{tmp_path / 'audit.db'}"
    populate(db, hostile=False)
    out = tmp_path / "pub"
    r = cli("registry", "build", str(out), "--db", db)
    assert r.code == 0 and "7 site(s), 4 assessed, 3 not yet assessed" in r.out, r
    assert json.loads((out / "registry.json").read_text())["sites"]
    # Rebuilt in place: stale certificate files go, nothing half-written is left behind.
    (out / "certificates" / "TNM-2000-OLDOLDOLD0.json").write_text("{}")
    assert cli("registry", "build", str(out), "--db", db).code == 0
    assert not (out / "certificates" / "TNM-2000-OLDOLDOLD0.json").exists()
    assert not [p for p in out.rglob(".*") if p.is_file()]
    # With an online verify service the serial links there.
    r = cli("registry", "build", str(out), "--db", db, "--verify-url", "https://verify.example.gov.vn/c/")
    assert r.code == 0
    assert 'href="https://verify.example.gov.vn/c/TNM-2026-AAAAAAAAAA"' in (out / "index.html").read_text()

    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    open_key = tmp_path / "open-key.pem"  # an issuer key others can read: refused, not left out
    open_key.write_text("-----BEGIN PRIVATE KEY-----\n")
    open_key.chmod(0o644)
    for args in ((str(a_file),), (str(out), "--verify-url", "javascript:alert(1)"), (str(out), "--key", str(open_key))):
        r = cli("registry", "build", *args, "--db", db)
        assert r.code == 2 and r.err.count("\n") == 1 and "Traceback" not in r.err, r
