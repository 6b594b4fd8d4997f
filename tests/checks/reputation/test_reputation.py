"""Blocklist feeds and the reputation check, on loopback (127.0.1.60-127.0.1.89 and 127.0.1.240).

Feeds: per-line format detection and lookups; ``auditor feeds update`` only ever fetches from
a loopback HTTP server here and keeps the old file when a download is bad. Check: a listed
name (hosts file), a listed address (CIDR), a page linking to listed URLs/domains each yield
their id; ``--feeds DIR`` and ``AUDITOR_FEEDS`` both work; a missing directory is a check error.
"""

from __future__ import annotations

import gzip
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from auditor.check import CheckContext, CheckOutcome
from auditor.errors import AuditorError
from auditor.lab.privacy_sites import (
    LISTED_ADDRESS_FIRST,
    LISTED_ADDRESS_SITES,
    PRIVACY_SITES,
    REPUTATION_SITES,
)
from auditor.lab.server import LabHTTPServer, Page
from auditor.lab.sites import Lab, RunningSite
from auditor.targets import Resolver, make_target
from checks.reputation.check import ReputationCheck
from checks.reputation.feeds import load_feed_dir, parse_line
from checks.reputation.update import read_feed_config

LAB_FIRST = "127.0.1.60"
FEED_SERVER = "127.0.1.80"
CLEAN = PRIVACY_SITES[0]  # priv-good: nothing on it is listed in the sample

# --- feed formats ------------------------------------------------------------------------


@pytest.mark.parametrize(("line", "expected"), [
    ("evil.example", [("domain", "evil.example")]),
    ("  EVIL.Example.  # trailing comment", [("domain", "evil.example")]),
    ("*.wild.example", [("domain", "wild.example")]),
    ("||ads.example^$third-party", [("domain", "ads.example")]),
    ("@@||allowed.example^", []),
    ("0.0.0.0 a.example b.example localhost", [("domain", "a.example"), ("domain", "b.example")]),
    ("127.0.0.1\tlocalhost", []),
    ("::1 ip6-localhost", []),
    ("http://Evil.Example:80/Path/x.exe?a=1#frag", [("url", "http://evil.example/Path/x.exe?a=1")]),
    ("192.0.2.7", [("ip", "192.0.2.7")]),
    ("198.51.100.0/24 ; SBL123", [("cidr", "198.51.100.0/24")]),
    ("198.51.100.9/24", [("cidr", "198.51.100.0/24")]),
    ("2001:db8::/32", [("cidr", "2001:db8::/32")]),
    ("192.0.2.8-192.0.2.11", [("cidr", "192.0.2.8/30")]),
    ('"1","2024-05-01 10:00:00","http://203.0.113.5/bins/x.arm","online"', [("url", "http://203.0.113.5/bins/x.arm")]),
    ("# comment", []), ("! adblock comment", []), ("; comment", []), ("[Adblock Plus 2.0]", []),
    ("not a feed line at all", []), ("localhost", []), ("nodot", []), ("", []),
])
def test_line_formats(line: str, expected: list[tuple[str, str]]) -> None:
    assert parse_line(line) == expected


@pytest.fixture()
def feed_dir(tmp_path: Path) -> Path:
    d = tmp_path / "feeds"
    d.mkdir()
    (d / "hosts").write_text("# hosts file\n0.0.0.0 listed.example\n", encoding="utf-8")
    (d / "mixed.txt").write_text("parent.example\nhttp://urls.example/bad\nhttp://whole.example/\n"
                                 "203.0.113.0/25\n2001:db8:1::7\ngarbage line here\n", encoding="utf-8")
    with gzip.open(d / "extra.gz", "wt", encoding="utf-8") as gz:
        gz.write("gz.example\n")
    (d / "README.md").write_text("example.org is mentioned here but this is not a feed\n", encoding="utf-8")
    (d / ".hidden").write_text("hidden.example\n", encoding="utf-8")
    return d


def test_directory_loading_and_lookups(feed_dir: Path) -> None:
    feeds = load_feed_dir(feed_dir)
    assert [f.name for f in feeds.files] == ["extra.gz", "hosts", "mixed.txt"]
    mixed = next(f for f in feeds.files if f.name == "mixed.txt")
    assert mixed.skipped == 1 and mixed.counts == {"domain": 1, "url": 2, "ip": 1, "cidr": 1}
    assert [m.entry.describe() for m in feeds.lookup("listed.example")] == ["hosts:2"]
    assert [m.listed for m in feeds.lookup("deep.sub.parent.example")] == ["parent.example"]
    assert feeds.lookup("example") == [] and feeds.lookup("notparent.example") == []
    assert feeds.lookup("gz.example") and feeds.lookup("hidden.example") == []
    assert feeds.lookup("example.org") == []  # README.md is not read
    assert feeds.lookup("http://urls.example/bad") and not feeds.lookup("http://urls.example/good")
    assert feeds.lookup("https://whole.example/any/path")  # a bare-host URL lists the host
    assert [m.listed for m in feeds.lookup("203.0.113.77")] == ["203.0.113.0/25"]
    assert feeds.lookup("203.0.113.200") == []
    assert feeds.lookup("2001:db8:1::7") and feeds.lookup("::ffff:203.0.113.1")
    assert feeds.lookup("http://203.0.113.9/x")  # a URL on a listed address


def test_bad_feed_directories_are_one_line_errors(tmp_path: Path) -> None:
    with pytest.raises(AuditorError, match="not found"):
        load_feed_dir(tmp_path / "missing")
    with pytest.raises(AuditorError, match="no feed files"):
        load_feed_dir(tmp_path)
    (tmp_path / "junk.txt").write_text("nothing here\n", encoding="utf-8")
    with pytest.raises(AuditorError, match="lists nothing usable"):
        load_feed_dir(tmp_path)


# --- the check on lab sites -------------------------------------------------------------


@pytest.fixture(scope="module")
def rep_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    lab = Lab(tmp_path_factory.mktemp("rep-lab"), (CLEAN, *REPUTATION_SITES), first_address=LAB_FIRST)
    listed = Lab(tmp_path_factory.mktemp("rep-listed"), LISTED_ADDRESS_SITES, first_address=LISTED_ADDRESS_FIRST)
    lab.start()
    listed.start()
    lab.sites.extend(listed.sites)  # one object to look sites up in
    yield lab
    listed.stop()
    lab.stop()


def run_reputation(lab: Lab, site: RunningSite, **options: Any) -> CheckOutcome:
    resolver = Resolver(lab.resolve_args, allow_dns=False)
    target = make_target(site.url, resolver)
    ctx = CheckContext(timeout=5, deadline=time.monotonic() + 60, resolver=resolver, options=options)
    return ReputationCheck().run(target, ctx)


def test_sample_feed_planted_sites(rep_lab: Lab, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AUDITOR_FEEDS", raising=False)
    for site in rep_lab.sites:
        outcome = run_reputation(rep_lab, site)
        assert outcome.error is None, outcome.error
        assert {f.id for f in outcome.findings} == set(site.spec.expect), site.name
        assert outcome.evidence["feeds"]["builtin_sample"] is True
    domain = run_reputation(rep_lab, rep_lab.site("rep-domain")).findings[0]
    assert "hosts.txt:" in domain.evidence and domain.details["matches"][0]["feed"] == "hosts.txt"
    address = run_reputation(rep_lab, rep_lab.site("rep-address")).findings[0]
    assert address.details["matches"][0]["listed"] == "127.0.1.240/29"
    link = run_reputation(rep_lab, rep_lab.site("rep-link")).findings[0]
    hits = {h["url"]: h for h in link.details["hits"]}
    assert set(hits) == {"http://downloads.example/payload.exe", "https://www.scam-shop.example/deal",
                         "https://cdn.evil.test/inject.js"}
    assert hits["https://cdn.evil.test/inject.js"]["as"] == "script"
    assert hits["https://www.scam-shop.example/deal"]["listed"] == "scam-shop.example"
    assert link.url == rep_lab.site("rep-link").url


def test_missing_feed_directory_is_a_check_error(rep_lab: Lab, cli: Any, db_url: str, tmp_path: Path) -> None:
    site = rep_lab.site(CLEAN.name)
    with pytest.raises(AuditorError, match="feed directory not found"):
        run_reputation(rep_lab, site, feeds_dir=str(tmp_path / "none"))
    res = cli("scan", site.url, "--checks", "reputation", "--feeds", str(tmp_path / "none"), "--no-dns",
              "--format", "json", "--db", db_url, *[a for r in site.resolve for a in ("--resolve", r)])
    assert res.code == 2
    check = json.loads(res.out)["results"][0]["checks"]["reputation"]
    assert check["status"] == "error" and "feed directory not found" in check["error"]


def _own_feeds(directory: Path, lab: Lab) -> Path:
    clean = lab.site(CLEAN.name)
    directory.mkdir(exist_ok=True)
    (directory / "hosts.txt").write_text(f"0.0.0.0 {clean.host}\n", encoding="utf-8")
    (directory / "drop.txt").write_text(f"{clean.address}/32 ; planted\n", encoding="utf-8")
    (directory / "urls.txt").write_text(f"https://{clean.host}/dang-ky\nhttps://www.scam-shop.example/deal\n",
                                        encoding="utf-8")
    return directory


@pytest.mark.parametrize("how", ["--feeds", "AUDITOR_FEEDS"])
def test_feed_directory_from_option_or_environment(rep_lab: Lab, cli: Any, db_url: str, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch, how: str) -> None:
    feeds = _own_feeds(tmp_path / "own", rep_lab)
    sites = [rep_lab.site(CLEAN.name), rep_lab.site("rep-domain"), rep_lab.site("rep-link")]
    args = ["scan", *[s.url for s in sites], "--checks", "reputation", "--no-dns", "--format", "json",
            "--db", db_url, *[a for s in sites for r in s.resolve for a in ("--resolve", r)]]
    if how == "--feeds":
        monkeypatch.delenv("AUDITOR_FEEDS", raising=False)
        args += ["--feeds", str(feeds)]
    else:
        monkeypatch.setenv("AUDITOR_FEEDS", str(feeds))
    res = cli(*args)
    assert res.code == 0, res
    by_host = {r["host"]: {f["id"] for f in r["findings"]} for r in json.loads(res.out)["results"]}
    # The clean site is now listed by name and address; its own pages are never "malicious links".
    assert by_host[sites[0].host] == {"reputation.domain.blocklisted", "reputation.address.blocklisted"}
    assert by_host[sites[1].host] == set()  # only the sample lists rep-domain
    assert by_host[sites[2].host] == {"reputation.link.malicious"}
    scan_id = json.loads(res.out)["results"][2]["scan_id"]
    shown = json.loads(cli("show", str(scan_id), "--format", "json", "--db", db_url).out)["results"][0]
    assert [f["id"] for f in shown["findings"]] == ["reputation.link.malicious"]


# --- auditor feeds update / list / check --------------------------------------------------


class CountingServer(LabHTTPServer):
    """A lab HTTP server that counts requests (to prove scans never download feeds)."""

    hits = 0

    def finish_request(self, request: Any, client_address: Any) -> None:
        type(self).hits += 1
        super().finish_request(request, client_address)


@pytest.fixture(scope="module")
def feed_server() -> Iterator[LabHTTPServer]:
    pages = {
        "/hosts.txt": Page(body="# remote hosts feed\n0.0.0.0 remote-listed.example\n", content_type="text/plain"),
        "/urls.csv": Page(body='"1","2024-01-01","http://203.0.113.5/x.sh","online"\n', content_type="text/csv"),
        "/feed.gz": Page(body=gzip.compress(b"gzipped.example\n"), content_type="application/gzip"),
        "/error-page": Page(body="<html><body>Service unavailable</body></html>"),
        "/big.txt": Page(body="big.example\n" * 20_000, content_type="text/plain"),
        "/moved": Page(status=302, headers=[("Location", "/hosts.txt")]),
        "/gone": Page(status=500, body="oops"),
    }
    server = CountingServer(FEED_SERVER, 80, pages=pages).start()
    yield server
    server.stop()


def _config(tmp_path: Path, feeds: list[tuple[str, str, int | None]]) -> Path:
    lines = ["feeds:"]
    for name, path, max_bytes in feeds:
        lines.append(f"  - name: {name}\n    url: http://{FEED_SERVER}{path}")
        if max_bytes:
            lines.append(f"    max_bytes: {max_bytes}")
    cfg = tmp_path / "feeds.yaml"
    cfg.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return cfg


def test_feeds_update_list_and_check(feed_server: LabHTTPServer, cli: Any, tmp_path: Path) -> None:
    target = tmp_path / "downloaded"
    cfg = _config(tmp_path, [("remote-hosts", "/hosts.txt", None), ("urlhaus.csv", "/urls.csv", None),
                             ("zipped", "/feed.gz", None), ("redirected", "/moved", None)])
    res = cli("feeds", "update", "--config", str(cfg), "--dir", str(target), "--format", "json")
    assert res.code == 0, res
    statuses = {r["name"]: (r["status"], r["entries"]) for r in json.loads(res.out)["results"]}
    assert statuses == {"remote-hosts": ("updated", 1), "urlhaus.csv": ("updated", 1), "zipped": ("updated", 1),
                        "redirected": ("updated", 1)}
    assert sorted(os.listdir(target)) == ["redirected.txt", "remote-hosts.txt", "urlhaus.csv", "zipped.txt"]
    again = cli("feeds", "update", "--config", str(cfg), "--dir", str(target), "--format", "json")
    assert {r["status"] for r in json.loads(again.out)["results"]} == {"unchanged"}

    listed = cli("feeds", "list", "--feeds", str(target))
    assert listed.code == 0 and "remote-hosts.txt" in listed.out and "1 url" in listed.out
    check = cli("feeds", "check", "remote-listed.example", "http://203.0.113.5/x.sh", "gzipped.example",
                "clean.example", "--feeds", str(target))
    assert check.code == 1
    assert check.out.count("LISTED") == 3 and "clean.example: not listed" in check.out


def test_feeds_update_keeps_old_files_on_bad_downloads(feed_server: LabHTTPServer, cli: Any, tmp_path: Path) -> None:
    target = tmp_path / "feeds"
    target.mkdir()
    old = "0.0.0.0 kept.example\n"
    for name in ("a.txt", "b.txt", "c.txt"):
        (target / name).write_text(old, encoding="utf-8")
    cfg = _config(tmp_path, [("a", "/error-page", None), ("b", "/gone", None), ("c", "/big.txt", 1000)])
    res = cli("feeds", "update", "--config", str(cfg), "--dir", str(target))
    assert res.code == 2
    assert res.out.count("FAILED") == 3 and "3 of 3 feed(s) failed" in res.err
    assert "nothing recognisable" in res.out and "HTTP 500" in res.out and "max_bytes" in res.out
    for name in ("a.txt", "b.txt", "c.txt"):
        assert (target / name).read_text(encoding="utf-8") == old
    assert [p.name for p in target.iterdir() if p.name.startswith(".")] == []  # no temp files left


def test_feeds_config_errors(cli: Any, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    for text, message in (("feeds: []\n", "non-empty 'feeds' list"),
                          ("feeds:\n  - name: ../escape\n    url: http://127.0.1.80/x\n", "plain file name"),
                          ("feeds:\n  - name: ok\n    url: file:///etc/passwd\n", "http:// or https://"),
                          ("feeds: [\n", "cannot read feeds config")):
        bad.write_text(text, encoding="utf-8")
        res = cli("feeds", "update", "--config", str(bad), "--dir", str(tmp_path / "out"))
        assert res.code == 2 and message in res.err and "Traceback" not in res.err, (text, res)
    with pytest.raises(AuditorError, match="not found"):
        read_feed_config(tmp_path / "absent.yaml")


def test_scans_never_download_feeds(rep_lab: Lab, feed_server: LabHTTPServer, cli: Any, db_url: str,
                                    tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUDITOR_FEEDS_CONFIG", str(_config(tmp_path, [("remote-hosts", "/hosts.txt", None)])))
    monkeypatch.delenv("AUDITOR_FEEDS", raising=False)
    before = CountingServer.hits
    site = rep_lab.site(CLEAN.name)
    res = cli("scan", site.url, "--checks", "reputation", "--no-dns", "--db", db_url,
              *[a for r in site.resolve for a in ("--resolve", r)])
    assert res.code == 0, res
    assert CountingServer.hits == before
