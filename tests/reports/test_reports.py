"""PDF compliance reports rendered for real loopback sites and read back with pdftotext.

Lab on 127.0.4.20+ (this part's range): ``good`` (in an inventoried system) and
``cert-expired`` (no system). A hostile finding is stored directly in the expired site's
scan, since no lab page carries these strings in a finding.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from auditor import storage
from auditor.models import FindingRecord
from auditor.scanning import Auditor, ScanRequest

pytestmark = pytest.mark.skipif(shutil.which("pdftotext") is None, reason="poppler-utils not installed")

HOSTILE_TITLE = "<img src=x onerror=alert(1)>"
HOSTILE_EVIDENCE = "</td><h1>owned</h1><script>alert(2)</script>"
HOSTILE_URL = "https://cert-expired.lab.auditor.test/</td><h1>"
OWNER = "Sở Thông tin và Truyền thông <b>tỉnh</b>"


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    from auditor.lab.sites import LAB_SITES, Lab

    specs = [s for s in LAB_SITES if s.name in ("good", "cert-expired")]
    lab = Lab(tmp_path_factory.mktemp("lab-reports"), specs, first_address="127.0.4.20")
    lab.start()
    yield lab
    lab.stop()


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory, lab) -> dict[str, str]:  # type: ignore[no-untyped-def]
    from auditor.inventory import parse_yaml, store_records

    base = tmp_path_factory.mktemp("reports")
    db = f"sqlite:///{base / 'reports.db'}"
    good, bad = lab.site("good"), lab.site("cert-expired")
    with storage.session_scope(db) as s:
        store_records(s, parse_yaml(f"""
- name: cong-dich-vu-cong
  owner: "{OWNER}"
  category: citizen_business
  info_types: [public, personal]
  personal_data_subjects: 5000
  sites: ["{good.url}"]
"""))
    request = ScanRequest(targets=[good.url, bad.url], resolve=lab.resolve_args, ca_file=str(lab.ca_file),
                          allow_dns=False, checks="tls,http", timeout=5.0)
    auditor = Auditor(db=db)
    auditor.scan(request)
    results = auditor.scan(request)  # a second scan, so the history has two points
    bad_scan = results[1]["scan_id"]
    with storage.session_scope(db) as s:
        # An id outside the catalogue, so that the report shows the stored title as it is.
        s.add(FindingRecord(scan_id=bad_scan, finding_id="http.lab_hostile", check="http", severity="low",
                            title=HOSTILE_TITLE, evidence=HOSTILE_EVIDENCE, url=HOSTILE_URL,
                            details={"header": "<script>alert(3)</script>"}))
    return {"db": db, "good": good.url, "bad": bad.url, "dir": str(base)}


def _text(pdf: Path, layout: bool = True) -> str:
    args = ["pdftotext", *(["-layout"] if layout else []), str(pdf), "-"]
    return subprocess.run(args, check=True, capture_output=True, text=True).stdout


def _badge_grade(text: str, label: str) -> str | None:
    """The big grade letter, alone on its line a few lines below the badge's label."""
    after = text[text.index(label):].splitlines()[1:12]
    letters = [m.group(1) for line in after if (m := re.match(r"\s*([A-F])(\s|$)", line))]
    return letters[0] if letters else None


def _requirement_ids(db: str) -> list[str]:
    from auditor.compliance import evaluate_compliance

    with storage.session_scope(db) as s:
        return [r.id for r in evaluate_compliance(s, "cong-dich-vu-cong").requirements]


def test_system_report_in_vietnamese(env, cli) -> None:  # type: ignore[no-untyped-def]
    pdf = Path(env["dir"]) / "system-vi.pdf"
    r = cli("report", "cong-dich-vu-cong", "--pdf", str(pdf), "--db", env["db"])
    assert r.code == 0, r
    text = _text(pdf)
    for phrase in ("Báo cáo đánh giá tuân thủ an toàn thông tin", "Tóm tắt", "Cấp độ an toàn hệ thống thông tin",
                   "Căn cứ xác định cấp độ", "Yêu cầu an toàn thông tin theo cấp độ 2", "Chi tiết các phát hiện",
                   "Lịch sử đánh giá", "Phụ lục: tham số quét", "Cần xác nhận", "Chưa đánh giá", "Đạt",
                   "CHƯA ĐÁP ỨNG"):
        assert phrase in text, phrase
    assert "cong-dich-vu-cong" in text and env["good"] in text
    assert OWNER in text  # the owner's markup is shown as typed, not interpreted
    assert _badge_grade(text, "XẾP HẠNG") == "A"
    ids = _requirement_ids(env["db"])
    assert len(ids) >= 10
    missing = [i for i in ids if i not in text]
    assert not missing, missing
    assert "[chưa kiểm chứng]" in text  # sources marked unverified in the policy data


def test_site_report_escapes_hostile_strings(env, cli) -> None:  # type: ignore[no-untyped-def]
    pdf = Path(env["dir"]) / "site-vi.pdf"
    r = cli("report", env["bad"], "--pdf", str(pdf), "--db", env["db"])
    assert r.code == 0, r
    raw = _text(pdf, layout=False)
    flat = " ".join(raw.split())
    for hostile in (HOSTILE_TITLE, HOSTILE_EVIDENCE, HOSTILE_URL, "<script>alert(3)</script>"):
        assert hostile in flat, hostile
    text = _text(pdf)
    assert "tls.cert.expired" in text and "Nghiêm trọng" in text
    assert "Chứng thư số TLS đã hết hạn" in text  # the finding title in Vietnamese
    # No inventoried system: the network-trust criteria stand in for level requirements.
    assert "Tiêu chí chứng nhận tín nhiệm mạng" in text
    assert "Chưa khai báo cấp độ an toàn" in text
    for rule in ("grade.minimum", "findings.severity", "checks.completed", "level.requirements"):
        assert rule in text, rule
    assert "CHƯA ĐÁP ỨNG các tiêu chí" in text
    assert _badge_grade(text, "XẾP HẠNG") == "F"
    # The remediation and rationale come from the check's catalogue.
    assert "CÁCH KHẮC PHỤC" in text and "TẠI SAO QUAN TRỌNG" in text


def test_report_in_english(env, cli) -> None:  # type: ignore[no-untyped-def]
    pdf = Path(env["dir"]) / "system-en.pdf"
    r = cli("report", "cong-dich-vu-cong", "--pdf", str(pdf), "--lang", "en", "--db", env["db"])
    assert r.code == 0, r
    text = _text(pdf)
    for phrase in ("Information Security Compliance Report", "Executive summary", "Security requirements of level 2",
                   "Scan history", "Appendix: scan parameters", "Needs attestation", "NOT MET"):
        assert phrase in text, phrase
    assert "Báo cáo" not in text
    # The history chart's date labels: day and the month's three letters, not cut short.
    from reports.context import build_report

    with storage.session_scope(env["db"]) as s:
        svg = build_report(s, "cong-dich-vu-cong", lang="en").sites[0].history_svg
    labels = re.findall(r'text-anchor="middle" fill="#6b7785">([^<]*)<', svg)
    assert labels and all(re.fullmatch(r"\d{1,2} [A-Z][a-z]{2}", x) for x in labels), labels


def test_bad_input_is_one_line_and_writes_nothing(env, cli, tmp_path) -> None:  # type: ignore[no-untyped-def]
    r = cli("report", "no-such-system", "--pdf", str(tmp_path / "x.pdf"), "--db", env["db"])
    assert r.code == 2 and r.err.count("\n") == 1 and "neither an inventoried system" in r.err, r
    r = cli("report", "cong-dich-vu-cong", "--pdf", str(tmp_path / "missing" / "x.pdf"), "--db", env["db"])
    assert r.code == 2 and "does not exist" in r.err, r
    r = cli("report", "cong-dich-vu-cong", "--pdf", str(tmp_path / "x.pdf"), "--lang", "fr", "--db", env["db"])
    assert r.code == 2
    assert list(tmp_path.iterdir()) == []


def test_charts_are_our_own_svg() -> None:
    from reports.charts import Bar, Point, bar_chart, history_chart

    svg = bar_chart([Bar("<b>x</b>", 3), Bar("y", 0)])
    assert "&lt;b&gt;x&lt;/b&gt;" in svg and "<b>" not in svg
    line = history_chart([Point("01/11", 70, "C"), Point("08/11", 96, "A")], [("A", 90), ("B", 80)])
    assert line.count("<circle") == 2 and "A ≥ 90" in line


def test_every_catalogued_finding_has_a_vietnamese_title() -> None:
    import yaml

    from auditor import registry
    from reports.i18n import CATALOGUE as MESSAGES

    checks, _ = registry.discover()
    ids = {spec.id for c in checks.values() for spec in c.catalogue}
    titles = {spec.id for c in checks.values() for spec in c.catalogue if spec.translations.get("vi", {}).get("title")}
    assert not sorted(ids - titles)
    catalogue = yaml.safe_load(MESSAGES.read_text(encoding="utf-8"))
    assert all(set(v) == {"vi", "en"} and all(v.values()) for v in catalogue.values())


BUILT_IN_CHECKS = ("tls", "http", "privacy", "reputation", "ports", "portal")


def _flat(text: str) -> str:
    """Text with every run of white space made one space and in NFC, for phrases wrapped over lines."""
    import unicodedata

    return unicodedata.normalize("NFC", " ".join(text.split()))


def test_every_built_in_finding_has_vietnamese_rationale_and_remediation() -> None:
    from auditor import registry
    from reports.i18n import Messages, _findings_vi

    checks, broken = registry.discover()
    assert not broken
    assert set(BUILT_IN_CHECKS) <= set(checks)
    vi = _findings_vi()
    gaps = []
    for name in BUILT_IN_CHECKS:
        assert checks[name].catalogue, name
        for spec in checks[name].catalogue:
            entry = vi.get(spec.id, {})
            for field in ("title", "rationale", "remediation"):
                text = entry.get(field, "")
                if not text.strip():
                    gaps.append(f"{spec.id}.{field}")
                elif field != "title" and text == getattr(spec, field):
                    gaps.append(f"{spec.id}.{field} (still the English text)")
    assert not gaps, gaps
    # Vietnamese documents use them; English ones, and ids without a translation, keep the catalogue's.
    vi_t, en_t = Messages("vi"), Messages("en")
    spec = next(s for s in checks["tls"].catalogue if s.id == "tls.cert.expired")
    assert vi_t.finding_text(spec.id, "remediation", spec.remediation) == vi[spec.id]["remediation"]
    assert vi_t.finding_text(spec.id, "rationale", spec.rationale) == vi[spec.id]["rationale"]
    assert en_t.finding_text(spec.id, "remediation", spec.remediation) == spec.remediation
    assert en_t.finding_text(spec.id, "rationale", spec.rationale) == spec.rationale
    assert vi_t.finding_text("plugin.example.finding", "remediation", "Do X.") == "Do X."
    assert vi_t.finding_title("plugin.example.finding", "Plug-in title") == "Plug-in title"


def _expired_texts() -> tuple[dict[str, str], dict[str, str]]:
    from auditor.registry import finding_catalogue
    from reports.i18n import _findings_vi

    spec = finding_catalogue()["tls.cert.expired"]
    return _findings_vi()["tls.cert.expired"], {"rationale": spec.rationale, "remediation": spec.remediation}


def test_vietnamese_report_shows_vietnamese_rationale_and_remediation(env, cli) -> None:  # type: ignore[no-untyped-def]
    vi, en = _expired_texts()
    pdf = Path(env["dir"]) / "site-vi-remediation.pdf"
    r = cli("report", env["bad"], "--pdf", str(pdf), "--db", env["db"])
    assert r.code == 0, r
    flat = _flat(_text(pdf, layout=False))
    assert "tls.cert.expired" in flat
    assert _flat(vi["remediation"]) in flat
    assert _flat(vi["rationale"]) in flat
    assert _flat(en["remediation"]) not in flat and _flat(en["rationale"]) not in flat


def test_english_report_keeps_the_english_remediation(env, cli) -> None:  # type: ignore[no-untyped-def]
    vi, en = _expired_texts()
    pdf = Path(env["dir"]) / "site-en-remediation.pdf"
    r = cli("report", env["bad"], "--pdf", str(pdf), "--lang", "en", "--db", env["db"])
    assert r.code == 0, r
    flat = _flat(_text(pdf, layout=False))
    assert "tls.cert.expired" in flat
    assert _flat(en["remediation"]) in flat and _flat(en["rationale"]) in flat
    assert _flat(vi["remediation"]) not in flat and _flat(vi["rationale"]) not in flat
