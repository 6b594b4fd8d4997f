"""Lab state portals for the portal check (real Vietnamese pages served on loopback).

``PORTAL_SITES`` holds one complete provincial-department portal (``portal-good``: every
mandatory section of the Decree 42/2022 checklist, a working search, print on articles, links to
other state portals, English organisation and contact pages, a ``.gov.vn`` name, clean WCAG 2.0
A/AA markup), the same portal without diacritics and in windows-1258, one whose menu is built by
a script, and one portal per planted defect, each the complete portal with one thing changed;
``expect`` holds exactly the finding ids each must yield. ``OTHER_PORTALS`` are the two state
portals the lab portals link to (``chinhphu.vn``, ``dichvucong.gov.vn``); start them in the same
lab so the link sample can reach them through ``--resolve``.

Start with :class:`auditor.lab.sites.Lab` on 127.0.11.x with standard ports (the links to the
other portals name port 443).
"""

from __future__ import annotations

import dataclasses
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field

from auditor.lab.privacy_sites import encode_cp1258
from auditor.lab.server import Page
from auditor.lab.sites import GOOD_SITE, LabSiteSpec

PROVINCE_DOMAIN = "labtinh.gov.vn"


@dataclass(frozen=True)
class PortalSiteSpec(LabSiteSpec):
    """A lab site under a name of its own (``domain``) instead of ``<name>.lab.auditor.test``."""

    domain: str = ""

    @property
    def host(self) -> str:
        return self.domain or f"{self.name}.{PROVINCE_DOMAIN}"


def plain(text: str) -> str:
    """Vietnamese without diacritics (as many older portals write it)."""
    text = text.replace("đ", "d").replace("Đ", "D")
    return "".join(c for c in unicodedata.normalize("NFD", text) if not unicodedata.combining(c))


# Menu entries: item id -> (path, link text). The complete portal has them all.
MENU: dict[str, tuple[str, str]] = {
    "organisation": ("/gioi-thieu/co-cau-to-chuc", "Cơ cấu tổ chức"),
    "leaders": ("/gioi-thieu/lanh-dao", "Lãnh đạo Sở"),
    "legal_documents": ("/van-ban", "Văn bản pháp luật"),
    "procedures": ("/thu-tuc-hanh-chinh", "Thủ tục hành chính"),
    "strategies_plans": ("/quy-hoach", "Chiến lược, quy hoạch"),
    "financial_statements": ("/cong-khai-ngan-sach", "Công khai ngân sách"),
    "statistics": ("/so-lieu", "Số liệu thống kê"),
    "consultation": ("/y-kien", "Lấy ý kiến dự thảo"),
    "officials_contacts": ("/danh-ba", "Danh bạ cán bộ"),
    "portal_contacts": ("/lien-he", "Liên hệ"),
}

ITEM_BODIES: dict[str, str] = {
    "organisation": "<p>Sở gồm Văn phòng, Thanh tra và ba phòng chuyên môn.</p>"
                    "<ul><li>Văn phòng Sở</li><li>Phòng Kế hoạch - Tài chính</li></ul>",
    "leaders": "<p>Giám đốc: Nguyễn Văn An. Phó Giám đốc: Trần Thị Bình.</p>",
    "legal_documents": (
        '<form role="search" action="/tim-kiem" method="get"><label for="vb-q">Tìm văn bản</label> '
        '<input id="vb-q" type="text" name="q"><input type="hidden" name="loai" value="van-ban"> '
        '<button type="submit">Tìm</button></form>'
        '<table><caption>Văn bản mới</caption><tr><th scope="col">Số hiệu</th><th scope="col">Tệp</th></tr>'
        '<tr><td>01/2026/QĐ-UBND</td><td><a href="/files/qd-01-2026.pdf">Tải về (PDF)</a></td></tr>'
        '<tr><td>02/2026/QĐ-UBND</td><td><a href="/files/qd-02-2026.docx">Tải về (DOCX)</a></td></tr></table>'),
    "procedures": ('<p>Các thủ tục được tiếp nhận trực tuyến trên '
                   '<a href="https://dichvucong.gov.vn/p/home/dvc-trang-chu.html">Cổng Dịch vụ công quốc gia</a>.</p>'),
    "strategies_plans": "<p>Quy hoạch tỉnh thời kỳ 2021-2030 và kế hoạch thực hiện năm 2026.</p>",
    "financial_statements": "<p>Báo cáo tài chính năm 2025 và dự toán ngân sách năm 2026.</p>",
    "statistics": "<p>Số liệu thống kê ngành quý III năm 2026.</p>",
    "consultation": "<p>Dự thảo quyết định về quy chế quản lý; hạn góp ý 30/12/2026; góp ý gửi về gopy@labtinh.gov.vn.</p>",
    "officials_contacts": ("<table><caption>Cán bộ đầu mối</caption><tr><th scope=\"col\">Họ tên</th>"
                           "<th scope=\"col\">Chức vụ</th><th scope=\"col\">Điện thoại</th><th scope=\"col\">Thư điện tử</th></tr>"
                           "<tr><td>Nguyễn Văn An</td><td>Giám đốc</td><td>0236 3821 001</td>"
                           "<td>an.nv@labtinh.gov.vn</td></tr></table>"),
    "portal_contacts": "<p>Địa chỉ: 15 Đường Lab, thành phố Lab. Điện thoại: 0236 3821 000. Thư điện tử: congtt@labtinh.gov.vn</p>",
}
ITEM_TITLES: dict[str, str] = {
    "organisation": "Cơ cấu tổ chức, chức năng nhiệm vụ", "leaders": "Lãnh đạo Sở",
    "legal_documents": "Văn bản pháp luật", "procedures": "Thủ tục hành chính",
    "strategies_plans": "Chiến lược, quy hoạch", "financial_statements": "Công khai ngân sách",
    "statistics": "Số liệu thống kê", "consultation": "Lấy ý kiến dự thảo văn bản",
    "officials_contacts": "Danh bạ cán bộ", "portal_contacts": "Liên hệ",
}

SEARCH_FORM = ('<form role="search" action="/tim-kiem" method="get"><label for="q">Tìm kiếm</label> '
               '<input id="q" type="search" name="q"> <button type="submit">Tìm</button></form>')
OTHER_PORTAL_LINKS = ('<p>Liên kết: <a href="https://chinhphu.vn/">Cổng TTĐT Chính phủ</a> · '
                      '<a href="https://dichvucong.gov.vn/">Cổng Dịch vụ công quốc gia</a></p>')
PRINT_BUTTON = '<p><button type="button" onclick="window.print()">In bài</button></p>'
A11Y_VIOLATIONS = ('<p><img src="/static/banner.png"></p>'
                   '<form action="/dang-ky-nhan-tin" method="post"><input type="text" name="email"></form>'
                   '<p style="color:#cccccc;background:#ffffff">Thông báo mờ khó đọc.</p>')

SCRIPT_MENU = """<nav aria-label="Trình đơn" id="menu"></nav>
<script>
const items = %s;
const nav = document.getElementById('menu');
const list = document.createElement('ul');
for (const [href, text] of items) {
  const li = document.createElement('li'); const a = document.createElement('a');
  a.href = href; a.textContent = text; li.appendChild(a); list.appendChild(li);
}
nav.appendChild(list);
</script>"""


@dataclass
class PortalPages:
    """The complete portal's pages, with switches for the planted defects."""

    host: str
    drop: frozenset[str] = frozenset()  # menu items left out (and their pages)
    diacritics: bool = True
    charset: str = "utf-8"  # or windows-1258
    script_menu: bool = False
    search: str = "ok"  # ok | no_results | error
    english: bool = True
    english_contacts: bool = True
    a11y_violations: bool = False
    print_button: bool = True
    portal_links: str = OTHER_PORTAL_LINKS
    extra: dict[str, str] = field(default_factory=dict)

    def _text(self, text: str) -> str:
        return text if self.diacritics else plain(text)

    def _page(self, title: str, body: str, lang: str = "vi", status: int = 200) -> Page:
        head_charset = "windows-1258" if self.charset == "windows-1258" else "utf-8"
        html = (f'<!doctype html>\n<html lang="{lang}">\n<head>\n<meta charset="{head_charset}">\n'
                f"<title>{title}</title>\n</head>\n<body>\n<header>{SEARCH_FORM if lang == 'vi' else ''}</header>\n"
                f"<main>\n<h1>{title}</h1>\n{body}\n</main>\n"
                f'<footer><p><a href="/lien-he">Liên hệ</a></p></footer>\n</body>\n</html>\n')
        if lang == "en":
            html = html.replace('<footer><p><a href="/lien-he">Liên hệ</a></p></footer>', "<footer></footer>")
        if "portal_contacts" in self.drop:
            html = html.replace('<p><a href="/lien-he">Liên hệ</a></p>', "")
        if lang == "vi":
            html = self._text(html)
        if self.charset == "windows-1258":
            return Page(status=status, body=encode_cp1258(html), content_type="text/html; charset=windows-1258")
        return Page(status=status, body=html)

    def _print(self) -> str:
        return PRINT_BUTTON if self.print_button else ""

    def pages(self) -> dict[str, Page]:
        menu = [(path, text) for item, (path, text) in MENU.items() if item not in self.drop]
        nav_items = "".join(f'<li><a href="{p}">{t}</a></li>' for p, t in menu)
        if self.english:
            nav_items += '<li><a href="/en/" hreflang="en" lang="en">English</a></li>'
        news = ('<h2>Tin tức</h2><ul><li><a href="/tin-tuc/hoi-nghi-so-ket">Hội nghị sơ kết 9 tháng</a></li>'
                '<li><a href="/tin-tuc/tap-huan">Tập huấn chuyển đổi số</a></li></ul>')
        if self.script_menu:
            import json

            nav = SCRIPT_MENU % json.dumps(menu + ([("/en/", "English")] if self.english else []), ensure_ascii=False)
            news = '<p><a href="/tin-tuc/hoi-nghi-so-ket">Hội nghị sơ kết 9 tháng</a></p>'
        else:
            nav = f'<nav aria-label="Trình đơn"><ul>{nav_items}</ul></nav>'
        home_body = (nav + "<p>Cổng thông tin điện tử thử nghiệm trên loopback. Không có gì ở đây là thật.</p>"
                     + news + self.portal_links + (A11Y_VIOLATIONS if self.a11y_violations else ""))
        out = {"/": self._page("Sở Thông tin thử nghiệm - Cổng thông tin điện tử", home_body)}
        for item, (path, _) in MENU.items():
            if item not in self.drop:
                out[path] = self._page(ITEM_TITLES[item], ITEM_BODIES[item])
        for path, title in (("/tin-tuc/hoi-nghi-so-ket", "Hội nghị sơ kết 9 tháng"),
                            ("/tin-tuc/tap-huan", "Tập huấn chuyển đổi số")):
            out[path] = self._page(title, f"<p>Nội dung bài viết {title}.</p>{self._print()}")
        results = ('<h2>Kết quả</h2><ol><li><a href="/tin-tuc/tap-huan-ky-2">Thủ tục mới về tập huấn</a></li>'
                   '<li><a href="/tin-tuc/thu-tuc-moi">Công bố thủ tục mới</a></li></ol>')
        if self.search == "ok":
            out["/tim-kiem"] = self._page("Kết quả tìm kiếm", results)
        elif self.search == "no_results":
            out["/tim-kiem"] = self._page("Kết quả tìm kiếm", "<p>Không tìm thấy kết quả nào phù hợp.</p>")
        else:
            out["/tim-kiem"] = self._page("Lỗi máy chủ", "<p>Lỗi hệ thống.</p>", status=500)
        for path, title in (("/tin-tuc/tap-huan-ky-2", "Thủ tục mới về tập huấn"),
                            ("/tin-tuc/thu-tuc-moi", "Công bố thủ tục mới")):
            out[path] = self._page(title, f"<p>{title}.</p>{self._print()}")
        out["/files/qd-01-2026.pdf"] = Page(body=b"%PDF-1.4\n% lab\n", content_type="application/pdf")
        out["/files/qd-02-2026.docx"] = Page(body=b"PK\x03\x04lab", content_type="application/octet-stream")
        if self.english:
            out["/en/"] = self._page("Department of Lab - Portal", (
                '<nav aria-label="Menu"><ul><li><a href="/en/organization">Organizational structure</a></li>'
                '<li><a href="/en/contacts">Contacts</a></li><li><a href="/" lang="vi">Tiếng Việt</a></li></ul></nav>'),
                lang="en")
            out["/en/organization"] = self._page("Organizational structure",
                                                 "<p>Functions and tasks of the Department and its units.</p>", lang="en")
            if not self.english_contacts:
                out["/en/"] = self._page("Department of Lab - Portal", (
                    '<nav aria-label="Menu"><ul><li><a href="/en/organization">Organizational structure</a></li>'
                    '<li><a href="/" lang="vi">Tiếng Việt</a></li></ul></nav>'), lang="en")
            else:
                out["/en/contacts"] = self._page("Contacts", (
                    "<p>Director: Nguyen Van An, phone +84 236 3821 001, e-mail an.nv@labtinh.gov.vn</p>"), lang="en")
        for path, body in self.extra.items():
            out[path] = self._page("Trang", body)
        return out


def _portal(name: str, expect: tuple[str, ...] = (), description: str = "",
            change: Callable[[PortalPages], None] | None = None, domain: str = "") -> PortalSiteSpec:
    spec = PortalSiteSpec(name=name, domain=domain)
    pages = PortalPages(host=spec.host)
    if change is not None:
        change(pages)
    fields = {f.name: getattr(GOOD_SITE, f.name) for f in dataclasses.fields(LabSiteSpec)}
    fields.update(name=name, expect=frozenset(expect), description=description, pages=pages.pages())
    return PortalSiteSpec(**fields, domain=domain)


def _set(**values: object) -> Callable[[PortalPages], None]:
    def apply(pages: PortalPages) -> None:
        for key, value in values.items():
            setattr(pages, key, value)
    return apply


def _other(name: str, domain: str, title: str) -> PortalSiteSpec:
    page = Page(body=f'<!doctype html><html lang="vi"><head><meta charset="utf-8"><title>{title}</title></head>'
                     f"<body><main><h1>{title}</h1></main></body></html>")
    fields = {f.name: getattr(GOOD_SITE, f.name) for f in dataclasses.fields(LabSiteSpec)}
    fields.update(name=name, expect=frozenset(), description=title,
                  pages={"/": page, "/p/home/dvc-trang-chu.html": page})
    return PortalSiteSpec(**fields, domain=domain)


OTHER_PORTALS: tuple[PortalSiteSpec, ...] = (
    _other("chinhphu", "chinhphu.vn", "Cổng thông tin điện tử Chính phủ (lab)"),
    _other("dichvucong", "dichvucong.gov.vn", "Cổng Dịch vụ công quốc gia (lab)"),
)

# Missing-item portals: some in UTF-8 with diacritics, some without, some in windows-1258.
_MISSING_VARIANTS: dict[str, dict[str, object]] = {
    "organisation": {}, "leaders": {"diacritics": False}, "legal_documents": {},
    "procedures": {"charset": "windows-1258"}, "strategies_plans": {"diacritics": False},
    "financial_statements": {"charset": "windows-1258"}, "statistics": {}, "consultation": {"diacritics": False},
    "officials_contacts": {"charset": "windows-1258"}, "portal_contacts": {},
}

PORTAL_SITES: tuple[PortalSiteSpec, ...] = (
    _portal("portal-good", (), "complete portal, UTF-8 with diacritics"),
    _portal("portal-plain", (), "complete portal written without diacritics", _set(diacritics=False)),
    _portal("portal-cp1258", (), "complete portal in windows-1258", _set(charset="windows-1258")),
    _portal("portal-script", (), "complete portal whose menu is built by a script", _set(script_menu=True)),
    *(_portal(f"portal-no-{item.replace('_', '-')}", ("portal.section.missing",), f"no {item} section",
              _set(drop=frozenset({item}), **variant))
      for item, variant in _MISSING_VARIANTS.items()),
    _portal("portal-search-broken", ("portal.search.broken",), "search answers 'no results'",
            _set(search="no_results")),
    _portal("portal-no-english", ("portal.english.missing",), "no English pages", _set(english=False)),
    _portal("portal-search-error", ("portal.search.broken",), "search answers 500", _set(search="error")),
    _portal("portal-english-partial", ("portal.english.missing",), "English pages without officials' contacts",
            _set(english_contacts=False)),
    _portal("portal-bad-domain", ("portal.domain.nonstandard",), "complete portal outside .gov.vn",
            domain="congthongtin-labtinh.vn"),
    _portal("portal-no-print", ("portal.print.missing",), "articles without a print function",
            _set(print_button=False)),
    _portal("portal-links-broken", ("portal.links.broken",), "a link to another state portal answers 404",
            _set(portal_links=OTHER_PORTAL_LINKS.replace("https://chinhphu.vn/", "https://chinhphu.vn/da-xoa"))),
    _portal("portal-a11y", ("portal.a11y.violation",), "complete portal with planted WCAG 2.0 violations",
            _set(a11y_violations=True)),
)

# The item each missing-item portal lacks (for the tests' exact checks).
MISSING_ITEM = {f"portal-no-{item.replace('_', '-')}": item for item in _MISSING_VARIANTS}
