"""The privacy check: classifier and form reader, then real sites on loopback (127.0.1.1-127.0.1.39).

Each lab site is the compliant registration site with one thing changed; each yields exactly
its planted id and the compliant site yields none. The end-to-end test runs ``auditor scan``
and ``auditor show`` on the same sites.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from bs4 import BeautifulSoup
from project_paths import PROJECT

from auditor.check import CheckContext, CheckOutcome, Severity
from auditor.errors import AuditorError
from auditor.lab.privacy_sites import PRIVACY_SITES
from auditor.lab.sites import Lab, RunningSite
from auditor.targets import Resolver, make_target
from checks.privacy.check import CATALOGUE, PrivacyCheck
from checks.privacy.personal_data import (
    FieldText,
    classify_field,
    load_vocabulary,
    normalize,
    read_forms,
    strip_diacritics,
)
from policies import PolicyFiles

LAB_FIRST = "127.0.1.1"
DEAD_ADDRESS = "127.0.1.39"  # nothing listens here
FINDINGS_MD = PROJECT.parent / "shared" / "docs" / "findings.md"
VOCAB = load_vocabulary(PolicyFiles().layers("privacy.yaml"))

# --- classifier ----------------------------------------------------------------------------


def test_normalize_strips_vietnamese_diacritics() -> None:
    assert strip_diacritics("Đường Hồ Chí Minh, đảo") == "Duong Ho Chi Minh, dao"
    assert normalize("Số Điện Thoại (*)") == "so dien thoai"
    assert normalize("txtHoVaTen") == "txt ho va ten"
    assert normalize("SO_CMND") == "so cmnd"
    # Decomposed input (combining marks, as windows-1258 pages produce) normalises the same.
    assert normalize("Ho\u0323 te\u0302n") == normalize("Họ tên") == "ho ten"


CLASSIFIED = [
    # (field text, expected kind, expected category)
    (dict(label="Họ và tên"), "full_name", "personal"),
    (dict(label="Ho va ten"), "full_name", "personal"),
    (dict(label="Full name"), "full_name", "personal"),
    (dict(name="hoTen"), "full_name", "personal"),
    (dict(label="Ngày sinh"), "birth_date", "personal"),
    (dict(placeholder="ngay sinh"), "birth_date", "personal"),
    (dict(label="Date of birth"), "birth_date", "personal"),
    (dict(label="Số điện thoại"), "phone", "personal"),
    (dict(name="sodienthoai"), "phone", "personal"),
    (dict(type="tel", name="x1"), "phone", "personal"),
    (dict(label="Email"), "email", "personal"),
    (dict(type="email", name="f"), "email", "personal"),
    (dict(label="Địa chỉ thường trú"), "address", "personal"),
    (dict(label="Dia chi"), "address", "personal"),
    (dict(label="Số CCCD/CMND"), "national_id", "personal"),
    (dict(label="So dinh danh ca nhan"), "national_id", "personal"),
    (dict(label="Hộ chiếu"), "passport", "personal"),
    (dict(label="Passport number"), "passport", "personal"),
    (dict(label="Mã số thuế"), "tax_code", "personal"),
    (dict(label="Số BHXH"), "social_insurance", "personal"),
    (dict(label="Giới tính"), "sex", "personal"),
    (dict(autocomplete="shipping street-address"), "address", "personal"),
    (dict(label="Số tài khoản ngân hàng"), "bank", "sensitive"),
    (dict(label="So tai khoan"), "bank", "sensitive"),
    (dict(autocomplete="cc-number"), "bank", "sensitive"),
    (dict(label="Tôn giáo"), "religion", "sensitive"),
    (dict(label="Tinh trang suc khoe"), "health", "sensitive"),
    (dict(label="Medical history"), "health", "sensitive"),
    (dict(label="Dân tộc"), "ethnicity", "sensitive"),
    (dict(label="Vân tay"), "biometric", "sensitive"),
    (dict(label="Lý lịch tư pháp"), "criminal", "sensitive"),
    (dict(label="Xu hướng tính dục"), "sex_life", "sensitive"),
    (dict(label="Vị trí hiện tại"), "location", "sensitive"),
    (dict(label="Quan điểm chính trị"), "political_views", "sensitive"),
    (dict(label="Ảnh CCCD mặt trước", type="file"), "id_document_image", "sensitive"),
    (dict(label="Mật khẩu"), "password", "credential"),
    (dict(type="password", name="p"), "password", "credential"),
    (dict(label="Tên đăng nhập"), "username", "credential"),
    (dict(label="Ten dang nhap"), "username", "credential"),
    (dict(label="Tên công ty"), "not_personal", "other"),
    (dict(type="search", name="q"), "not_personal", "other"),
    (dict(label="Tìm kiếm"), "not_personal", "other"),
    (dict(label="Hồ sơ đính kèm", type="file"), "", "other"),
    (dict(label="Trình độ đào tạo"), "", "other"),
    (dict(name="csrf_token"), "", "other"),
    (dict(name="__RequestVerificationToken"), "", "other"),
    (dict(context="Họ tên:"), "full_name", "personal"),
]


@pytest.mark.parametrize(("text", "kind", "category"), CLASSIFIED, ids=[str(c[0]) for c in CLASSIFIED])
def test_field_classifier(text: dict[str, str], kind: str, category: str) -> None:
    info = classify_field(FieldText(**text), VOCAB)
    assert (info.kind, info.category) == (kind, category), info.matched


def _forms(html: str, url: str = "https://site.test/page") -> list[Any]:
    return read_forms(BeautifulSoup(html, "html.parser"), url, VOCAB)


def test_search_login_and_reset_forms_are_not_collections() -> None:
    forms = _forms("""
      <form role="search" action="/s"><input type="search" name="q"><button>Tìm</button></form>
      <form action="/s2"><input name="keyword" placeholder="Từ khóa"><input type="submit" value="Tìm kiếm"></form>
      <form method="post" action="/login"><input type="hidden" name="csrf_token" value="x">
        <label for="u">Email</label><input id="u" name="email" type="email">
        <label for="p">Mật khẩu</label><input id="p" name="pw" type="password">
        <input type="checkbox" id="r"><label for="r">Ghi nhớ đăng nhập</label><button>Đăng nhập</button></form>
      <form method="post" action="/reset"><h2>Quên mật khẩu</h2><input type="email" name="email"></form>
      <form method="post" action="/lang"><select name="lang"><option>vi</option></select></form>
    """)
    assert [f.role for f in forms] == ["search", "search", "login", "login", "other"]
    login = forms[2]
    assert [f.text.name for f in login.fields] == ["email", "pw", ""]  # csrf (hidden) and button skipped
    assert login.consents == []


def test_login_form_checkboxes_are_not_credentials() -> None:
    # "Show password" and "remember my account" boxes send a value the site wrote.
    (form,) = _forms("""
      <form method="post" action="/dang-nhap"><input type="email" name="email" placeholder="Email">
        <input type="password" name="pw" placeholder="Mật khẩu">
        <label><input type="checkbox" id="sp"> Hiển thị mật khẩu</label>
        <label><input type="checkbox" name="nho"> Ghi nhớ tài khoản</label><button>Đăng nhập</button></form>""")
    assert form.role == "login"
    assert [f.category for f in form.fields] == ["personal", "credential", "other", "other"]
    # A radio button still carries personal data chosen from the site's options.
    (form,) = _forms('<form method="post"><input type="radio" name="gioi_tinh" value="nam"> Nam</form>')
    assert form.fields[0].kind == "sex"


def test_lookup_boxes_and_id_number_logins_are_not_collections() -> None:
    forms = _forms("""
      <form action="/tim-kiem"><input name="kw" placeholder="Tìm bệnh, thuốc..."></form>
      <form action="/cua-hang"><input name="city" placeholder="Chọn tỉnh thành"><button>Tìm cửa hàng</button></form>
      <form method="post" action="/dang-nhap"><input name="cccd" placeholder="Số định danh cá nhân">
        <input type="password" name="pw" placeholder="Mật khẩu"><button>Đăng nhập</button></form>
      <form method="post" action="/ban-tin"><p>Tìm hiểu ưu đãi mới: đăng ký nhận bản tin</p>
        <input type="email" name="email" placeholder="Email"><button>Đăng ký</button></form>
    """)
    assert [f.role for f in forms] == ["search", "search", "login", "personal"]


def test_registration_newsletter_and_formless_inputs() -> None:
    forms = _forms("""
      <form id="reg" method="post"><input name="ho_ten" placeholder="Họ tên">
        <input type="password" name="a" autocomplete="new-password"><input type="password" name="b"></form>
      <form><label>Đăng ký nhận bản tin <input type="email" name="e"></label></form>
      <input form="reg" name="so_cccd" aria-label="Số CCCD">
      <input type="checkbox" form="reg" id="c"><label for="c">Tôi đồng ý cho xử lý dữ liệu cá nhân</label>
    """)
    reg, news = forms
    assert reg.role == "personal" and news.role == "personal"
    assert [f.kind for f in reg.fields] == ["full_name", "password", "password", "national_id"]
    assert len(reg.consents) == 1 and not reg.consents[0].checked
    assert reg.action_url == "https://site.test/page"  # no action: the page itself


def test_form_action_urls() -> None:
    long_path = "/gui/" + "a" * 600
    forms = _forms(f"""
      <form method="post" action="#"><input name="email"></form>
      <form method="post" action="javascript:void(0)"><input name="email"></form>
      <form method="post" action="http://other.test{long_path}#top"><input name="email"></form>
      <form method="post" action="/a"><input name="email"><button formaction="https://b.test/b">Gửi</button></form>
    """, url="https://site.test/page?x=1")
    assert [f.action_url for f in forms] == [
        "https://site.test/page?x=1", None, f"http://other.test{long_path}", "https://b.test/b"]


def test_consent_controls() -> None:
    (form,) = _forms("""
      <form method="post" action="/x"><input name="hoten" aria-label="Họ và tên">
        <p><input type="checkbox" name="a" checked> Tôi đồng ý với điều khoản dịch vụ và nhận quảng cáo</p>
        <p><label><input type="checkbox" name="b"> Subscribe to our newsletter</label></p>
        <p><label><input type="radio" name="c" value="yes"> Đồng ý chia sẻ với đối tác</label>
           <label><input type="radio" name="c" value="no" checked> Không đồng ý</label></p>
      </form>""")
    a, b, yes, no = form.consents
    assert a.checked and sorted(a.purposes) == ["marketing", "service"]
    assert not b.checked and b.purposes == ["marketing"]  # a purpose alone makes it a consent box
    assert not yes.refusal and yes.purposes == ["sharing"]
    assert no.refusal and no.checked  # a pre-selected "no" is not consent given


def test_hostile_form_text_is_bounded() -> None:
    long_label = "Họ tên " + "x" * 50_000 + "\x1b[31m<script>alert(1)</script>"
    (form,) = _forms(f'<form method=post><label for=a>{long_label}</label><input id=a name="{"n" * 5000}"></form>')
    field = form.fields[0]
    assert field.kind == "full_name"
    d = field.to_dict()
    assert len(d["label"]) <= 120 and len(d["name"]) <= 100 and len(d["matched"]) <= 160


def test_vocabulary_can_be_extended(tmp_path: Path) -> None:
    extra = tmp_path / "privacy.yaml"
    extra.write_text(
        "fields:\n  voter:\n    category: personal\n    source: decree13\n"
        "    article: \"Decree 13/2023 Art. 2.3(l)\"\n    keywords: [mã cử tri, voter number]\n",
        encoding="utf-8",
    )
    vocab = load_vocabulary([*PolicyFiles().layers("privacy.yaml"), extra])
    assert classify_field(FieldText(label="Mã cử tri"), vocab).kind == "voter"
    assert classify_field(FieldText(label="Mã cử tri"), VOCAB).category == "other"
    assert classify_field(FieldText(label="Số điện thoại"), vocab).kind == "phone"  # defaults kept


def test_vocabulary_entries_cite_their_article() -> None:
    assert VOCAB.kinds and all(k.article for k in VOCAB.kinds)
    assert all(item.article for item in VOCAB.notice_items)
    assert {i.name for i in VOCAB.notice_items} == {"purposes", "data_types", "parties", "retention", "rights",
                                                     "contact"}


def test_catalogue_matches_findings_md() -> None:
    ids = {s.id: s.severity for s in CATALOGUE}
    assert ids["privacy.third_party.hosts"] is Severity.INFO
    assert all(s.references for s in CATALOGUE)
    if not FINDINGS_MD.is_file():
        pytest.skip("shared/docs/findings.md not beside the repository")
    rows = re.findall(r"^\| (privacy\.[a-z_.]+) \| (\w+) \|", FINDINGS_MD.read_text(encoding="utf-8"), re.M)
    assert len(rows) >= 11  # findings.md may list more (privacy.third_party.hosts once recorded)
    for fid, severity in rows:
        assert ids.get(fid) is Severity(severity), fid


# --- lab sites ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def privacy_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    lab = Lab(tmp_path_factory.mktemp("privacy-lab"), PRIVACY_SITES, first_address=LAB_FIRST)
    lab.start()
    yield lab
    lab.stop()


def run_privacy(lab: Lab, site: RunningSite, **kwargs: Any) -> CheckOutcome:
    resolver = Resolver(lab.resolve_args, allow_dns=False)
    target = make_target(site.url, resolver)
    ctx = CheckContext(timeout=5, deadline=time.monotonic() + 60, resolver=resolver, **kwargs)
    return PrivacyCheck().run(target, ctx)


@pytest.fixture(scope="module")
def outcomes(privacy_lab: Lab) -> dict[str, CheckOutcome]:
    return {site.name: run_privacy(privacy_lab, site) for site in privacy_lab.sites}


@pytest.mark.parametrize("spec", PRIVACY_SITES, ids=[s.name for s in PRIVACY_SITES])
def test_each_site_yields_exactly_its_ids(outcomes: dict[str, CheckOutcome], spec: Any) -> None:
    outcome = outcomes[spec.name]
    assert outcome.error is None
    assert {f.id for f in outcome.findings} == set(spec.expect), [f.evidence for f in outcome.findings]
    for f in outcome.findings:
        assert f.url and f.url.startswith(("https://", "http://"))
        if f.id.startswith("privacy.form.") or f.id.startswith(("privacy.consent.", "privacy.sensitive.")):
            assert f.details["form"]["method"] in ("GET", "POST")
            assert f.details["fields"] and all("category" in fld for fld in f.details["fields"])
            assert f.details["page"] == f.url


def test_compliant_site_is_read_fully(outcomes: dict[str, CheckOutcome]) -> None:
    evidence = outcomes["priv-good"].evidence
    roles = sorted(f["role"] for f in evidence["forms"])
    # registration (vi + en) and contact collect; login and reset are account forms; search boxes.
    assert roles.count("personal") == 3 and roles.count("login") == 2 and roles.count("search") >= 1
    assessed = [p for p in evidence["policies"] if p["state"] == "assessed"]
    assert {p["url"].rsplit("/", 1)[1] for p in assessed} >= {"chinh-sach-bao-mat", "privacy"}
    assert all(p["missing"] == [] for p in assessed)
    assert evidence["third_party_hosts"] == []
    assert [c["name"] for c in evidence["first_visit_cookies"]] == ["sessionid"]


def test_finding_details(outcomes: dict[str, CheckOutcome], privacy_lab: Lab) -> None:
    def only(site: str, fid: str) -> Any:
        found = [f for f in outcomes[site].findings if f.id == fid]
        assert found, (site, fid)
        return found[0]

    f = only("priv-policy-incomplete", "privacy.notice.incomplete")
    assert [m["item"] for m in f.details["missing"]] == ["retention", "rights"]
    assert f.url.endswith("/chinh-sach-bao-mat")

    f = only("priv-http-page", "privacy.form.insecure_transport")
    assert f.url.startswith("http://") and "the page itself is plain HTTP" in f.details["reasons"]

    f = only("priv-http-action", "privacy.form.insecure_transport")
    assert f.url.startswith("https://") and f.details["form"]["action_url"].startswith("http://")

    f = only("priv-third-party", "privacy.form.third_party_action")
    assert f.details["recipient"] == "forms.partner.example"

    f = only("priv-get", "privacy.form.get_method")  # no diacritics, table layout
    assert "Ho va ten" in f.evidence and f.details["form"]["method"] == "GET"

    f = only("priv-sensitive", "privacy.sensitive.no_notice")
    assert sorted(x["kind"] for x in f.details["sensitive"]) == ["health", "religion"]

    f = only("priv-bundled", "privacy.consent.bundled")
    assert sorted(f.details["consents"][0]["purposes"]) == ["marketing", "service", "sharing"]

    f = only("priv-tracker", "privacy.tracker.before_consent")
    assert [h["host"] for h in f.details["hosts"]] == ["www.googletagmanager.com"]
    assert f.details["hosts"][0]["tracker"]["owner"] == "Google LLC"

    f = only("priv-cookie", "privacy.cookie.before_consent")
    assert [c["name"] for c in f.details["cookies"]] == ["_ga"]

    f = only("priv-third-party-host", "privacy.third_party.hosts")
    assert [h["host"] for h in f.details["hosts"]] == ["fonts.cdn.example"]
    held = outcomes["priv-third-party-host"].evidence["held_until_consent"]
    assert list(held) == ["www.googletagmanager.com"]  # consent-gated script: not a tracker finding

    notice = [f for f in outcomes["priv-no-notice"].findings]
    assert sorted(f.url.rsplit("/", 1)[1] for f in notice) == ["dang-ky", "lien-he"]


def test_tracker_list_can_be_extended(privacy_lab: Lab, tmp_path: Path) -> None:
    site = privacy_lab.site("priv-third-party-host")
    (tmp_path / "trackers.yaml").write_text(
        "trackers:\n  - name: Example CDN analytics\n    owner: Example Ltd\n    country: ZZ\n"
        "    category: analytics\n    hosts: [cdn.example]\n    cookies: [sessionid]\n",
        encoding="utf-8",
    )
    for kwargs in ({"policy_files": PolicyFiles.at(tmp_path)},
                   {"params": {"privacy.tracker_files": [str(tmp_path / "trackers.yaml")]}}):
        outcome = run_privacy(privacy_lab, site, **kwargs)
        ids = {f.id for f in outcome.findings}
        assert {"privacy.tracker.before_consent", "privacy.cookie.before_consent"} <= ids, kwargs
    # A missing extension file is a one-line error (the engine reports it as a check error).
    with pytest.raises(AuditorError, match="file not found"):
        run_privacy(privacy_lab, site, params={"privacy.tracker_files": [str(tmp_path / "nope.yaml")]})


def test_unreachable_site_is_a_check_error() -> None:
    resolver = Resolver([f"dead.privacy.test:*:{DEAD_ADDRESS}"], allow_dns=False)
    target = make_target("https://dead.privacy.test/", resolver)
    outcome = PrivacyCheck().run(target, CheckContext(timeout=2, resolver=resolver))
    assert outcome.status == "error" and outcome.findings == []
    assert "reached no page" in (outcome.error or "")


# --- end to end ------------------------------------------------------------------------


def test_scan_json_table_and_storage(privacy_lab: Lab, cli: Any, db_url: str) -> None:
    resolves = [arg for site in privacy_lab.sites for r in site.resolve for arg in ("--resolve", r)]
    urls = [site.url for site in privacy_lab.sites]
    res = cli("scan", *urls, "--checks", "privacy,reputation", "--no-dns", "--format", "json", "--db", db_url,
              *resolves)
    assert res.code == 0, res
    results = {r["host"]: r for r in json.loads(res.out)["results"]}
    for site in privacy_lab.sites:
        r = results[site.host]
        assert r["checks"]["privacy"]["status"] == "ok" and r["checks"]["reputation"]["status"] == "ok"
        assert {f["id"] for f in r["findings"]} == set(site.spec.expect), site.name
        assert all(f.get("url") for f in r["findings"])
    preticked = results[privacy_lab.site("priv-preticked").host]
    assert preticked["grade"] == "C"  # a high finding caps the grade

    shown = cli("show", str(preticked["scan_id"]), "--format", "json", "--db", db_url)
    assert shown.code == 0, shown
    assert json.loads(shown.out)["results"][0]["findings"] == preticked["findings"]

    table = cli("show", str(preticked["scan_id"]), "--db", db_url)
    assert "privacy.consent.preticked" in table.out and "HIGH" in table.out

    from sqlmodel import select

    from auditor import storage
    from auditor.models import FindingRecord

    with storage.session_scope(db_url) as session:
        rows = session.exec(select(FindingRecord).where(FindingRecord.scan_id == preticked["scan_id"])).all()
        assert [(r.finding_id, r.details["form"]["method"]) for r in rows] == [("privacy.consent.preticked", "POST")]
        assert rows[0].details["consents"][0]["checked"] is True


def test_trackers_named_in_inline_code() -> None:
    from auditor.targets import Target
    from checks.web.crawl import Crawl, CrawlBounds, CrawledPage, read_page

    html = """<html><head>
      <script>(function(i,s,o,g,r,a,m){a=s.createElement(o);a.src=g;m.parentNode.insertBefore(a,m)})
        (window,document,'script','https://www.google-analytics.com/analytics.js','ga');</script>
      <script>function share(){window.open('https://www.facebook.com/sharer/sharer.php?u='+location.href)}</script>
      <script type="application/ld+json">{"url": "https://connect.facebook.net/x.js"}</script>
      </head><body><a href="https://www.youtube.com/watch?v=x">video</a></body></html>"""
    page = CrawledPage(url="https://site.test/", final_url="https://site.test/", depth=0, status=200,
                       content_type="text/html", encoding="utf-8", truncated=False, size=len(html))
    read_page(page, html)
    crawl = Crawl(start_url=page.url, host="site.test", bounds=CrawlBounds(), pages=[page])
    target = Target(url=page.url, host="site.test", port=443, address="127.0.1.38")
    evidence: dict[str, Any] = {}
    from checks.privacy.check import load_trackers

    findings = PrivacyCheck()._trackers(crawl, target, load_trackers(PolicyFiles().layers("trackers.yaml")), evidence)
    tracker = next(f for f in findings if f.id == "privacy.tracker.before_consent")
    # The GA loader snippet counts; a share link built in code, JSON-LD data and a plain link do not.
    assert [h["host"] for h in tracker.details["hosts"]] == ["www.google-analytics.com"]


def test_a_footer_form_on_every_page_is_one_form() -> None:
    footer = '<form method="post"><input type="email" name="news" placeholder="Email nhận bản tin"></form>'
    pages = []
    from checks.web.crawl import Crawl, CrawlBounds, CrawledPage, read_page

    for path in ("/", "/a", "/b"):
        html = f"<html><body><p>{path}</p>{footer}</body></html>"
        page = CrawledPage(url=f"https://site.test{path}", final_url=f"https://site.test{path}", depth=0,
                           status=200, content_type="text/html", encoding="utf-8", truncated=False, size=len(html))
        read_page(page, html)
        pages.append(page)
    crawl = Crawl(start_url="https://site.test/", host="site.test", bounds=CrawlBounds(), pages=pages)
    forms, errors = PrivacyCheck._forms(crawl, VOCAB)
    assert errors == [] and len(forms) == 1
    assert forms[0].form.role == "personal" and len(forms[0].pages) == 3


def test_own_host_in_unicode_is_not_a_third_party() -> None:
    from auditor.targets import Target, normalize_host
    from checks.privacy.check import _FormSeen
    from checks.web.crawl import CrawledPage, read_page, url_host

    host = normalize_host("cổngdịchvụ.vn")
    html = ('<form method="post" action="https://Cổngdịchvụ.VN/gui"><input name="hoten" placeholder="Họ tên">'
            '<label><input type="checkbox" name="dy"> Tôi đồng ý</label></form>')
    page = CrawledPage(url=f"https://{host}/", final_url=f"https://{host}/", depth=0, status=200,
                       content_type="text/html", encoding="utf-8", truncated=False, size=len(html))
    read_page(page, html)
    assert page.soup is not None
    (form,) = read_forms(page.soup, page.final_url, VOCAB)
    assert url_host(form.action_url) == host
    target = Target(url=page.url, host=host, port=443, address="127.0.1.38")
    ids = {f.id for f in PrivacyCheck()._form_findings(_FormSeen(form, page, [page.final_url]), target, VOCAB)}
    assert "privacy.form.third_party_action" not in ids
