"""Lab sites for the privacy, reputation and crawl checks (real pages on loopback).

``PRIVACY_SITES`` holds one compliant registration site (``priv-good``: HTTPS, separate
unticked consent boxes, a linked and complete personal-data policy, a login form, a search
box, a sensitive field with its notice, Vietnamese and English pages) and one site per
planted privacy issue, each the compliant site with exactly one thing changed.
``REPUTATION_SITES`` are clean sites on a listed name, or linking to listed URLs;
``LISTED_ADDRESS_SITES`` must start at an address inside the sample feed's listed block
(127.0.1.240/29). ``CRAWL_SITES`` exercise the crawler's bounds and its hostile cases.

Start them with :class:`auditor.lab.sites.Lab` on addresses of 127.0.1.0/24, e.g.
``Lab(dir, PRIVACY_SITES + REPUTATION_SITES + CRAWL_SITES, first_address="127.0.1.1")``.
"""

from __future__ import annotations

import dataclasses
import unicodedata
from collections.abc import Callable

from auditor.lab.server import Page
from auditor.lab.sites import GOOD_COOKIE, GOOD_HEADERS, GOOD_SITE, LAB_DOMAIN, LabSiteSpec

LISTED_ADDRESS_FIRST = "127.0.1.240"  # inside 127.0.1.240/29 of policies/feeds/sample/addresses.txt


def host_of(name: str) -> str:
    return f"{name}.{LAB_DOMAIN}"


# --- the compliant site, piece by piece ------------------------------------------------------

_HEAD = """<!doctype html>
<html lang="{lang}">
<head>
<meta charset="utf-8">
<title>{title}</title>
<link rel="stylesheet" href="/static/style.css">
{extra_head}</head>
<body>
"""
_FOOT = "</body>\n</html>\n"

FOOTER_LINKS = '<footer><a href="/chinh-sach-bao-mat">Chính sách bảo mật</a> · <a href="/lien-he">Liên hệ</a></footer>\n'

HOME_BODY = """<header>
<form role="search" action="/tim-kiem" method="get">
<input type="search" name="q" placeholder="Tìm kiếm thủ tục"> <button type="submit">Tìm</button>
</form>
</header>
<h1>Cổng dịch vụ công thử nghiệm</h1>
<p>Trang thử nghiệm trên loopback. Không có gì ở đây là thật.</p>
<ul>
<li><a href="/dang-ky">Đăng ký tài khoản</a></li>
<li><a href="{login_href}">Đăng nhập</a></li>
<li><a href="/en/register">English</a></li>
</ul>
{extra_body}"""

CONSENT_SERVICE = (
    '<p><input type="checkbox" id="dy1" name="dong_y_xu_ly" value="1" required{checked}> '
    '<label for="dy1">Tôi đồng ý để Cổng xử lý dữ liệu cá nhân nêu trên nhằm tạo tài khoản và cung cấp dịch vụ, '
    'theo <a href="/chinh-sach-bao-mat">Chính sách bảo mật</a>.</label></p>\n'
)
CONSENT_MARKETING = (
    '<p><input type="checkbox" id="dy2" name="nhan_tin" value="1"> '
    '<label for="dy2">Tôi đồng ý nhận bản tin và thông tin khuyến mãi qua email (không bắt buộc).</label></p>\n'
)
CONSENT_BUNDLED = (
    '<p><input type="checkbox" id="dy1" name="dong_y" value="1" required> '
    '<label for="dy1">Tôi đồng ý với Điều khoản sử dụng, đồng ý nhận thông tin quảng cáo, khuyến mãi và cho phép '
    'chia sẻ thông tin với đối tác của Cổng.</label></p>\n'
)
SENSITIVE_WITH_NOTICE = """<fieldset><legend>Hỗ trợ ưu tiên (không bắt buộc)</legend>
<p class="note">Lưu ý: thông tin sức khỏe dưới đây là dữ liệu cá nhân nhạy cảm (Nghị định 13/2023/NĐ-CP,
Điều 2 khoản 4). Chỉ khai báo nếu bạn cần được hỗ trợ ưu tiên.</p>
<p><label for="suckhoe">Tình trạng sức khỏe</label> <textarea id="suckhoe" name="suckhoe"></textarea></p>
</fieldset>
"""
SENSITIVE_WITHOUT_NOTICE = """<fieldset><legend>Hỗ trợ ưu tiên (không bắt buộc)</legend>
<p><label for="suckhoe">Tình trạng sức khỏe</label> <textarea id="suckhoe" name="suckhoe"></textarea></p>
<p><label for="tongiao">Tôn giáo</label> <input id="tongiao" name="tongiao"></p>
</fieldset>
"""

REGISTER_FORM = """<h1>Đăng ký tài khoản</h1>
<form id="dk" action="{action}" method="{method}">
<input type="hidden" name="csrf_token" value="c0ffee00c0ffee00">
<p><label for="hoten">Họ và tên</label> <input id="hoten" name="hoten" required></p>
<p><label for="ngaysinh">Ngày sinh</label> <input id="ngaysinh" name="ngaysinh" type="date"></p>
<p><label for="sdt">Số điện thoại</label> <input id="sdt" name="sdt" type="tel"></p>
<p><label for="email">Email</label> <input id="email" name="email" type="email"></p>
<p><label for="diachi">Địa chỉ liên hệ</label> <input id="diachi" name="diachi"></p>
<p><label for="cccd">Số CCCD</label> <input id="cccd" name="cccd"></p>
<p><label for="mk">Mật khẩu</label> <input id="mk" name="matkhau" type="password" autocomplete="new-password"></p>
<p><label for="mk2">Nhập lại mật khẩu</label> <input id="mk2" name="matkhau2" type="password" autocomplete="new-password"></p>
{sensitive}{consents}<p><button type="submit">Đăng ký</button></p>
</form>
"""

# The same registration form written without diacritics, as many older sites still do.
REGISTER_FORM_NO_DIACRITICS = """<h1>Dang ky tai khoan</h1>
<form id="dk" action="{action}" method="{method}">
<input type="hidden" name="csrf_token" value="c0ffee00c0ffee00">
<table>
<tr><td>Ho va ten</td><td><input name="field1"></td></tr>
<tr><td>Ngay sinh</td><td><input name="field2"></td></tr>
<tr><td>So dien thoai</td><td><input name="field3"></td></tr>
<tr><td>Dia chi email</td><td><input name="field4"></td></tr>
<tr><td>Mat khau</td><td><input name="field5" type="password"></td></tr>
<tr><td>Nhap lai mat khau</td><td><input name="field6" type="password"></td></tr>
</table>
{consents}<p><input type="submit" value="Dang ky"></p>
</form>
"""
CONSENTS_NO_DIACRITICS = (
    '<p><label><input type="checkbox" name="c1" value="1"> Toi dong y de Cong xu ly du lieu ca nhan neu tren '
    'nham tao tai khoan va cung cap dich vu, theo <a href="/chinh-sach-bao-mat">Chinh sach bao mat</a>.</label></p>\n'
    '<p><label><input type="checkbox" name="c2" value="1"> Toi dong y nhan ban tin khuyen mai qua email '
    '(khong bat buoc).</label></p>\n'
)
NO_CONSENT_NO_DIACRITICS = (
    '<p>Bang viec nhan Dang ky, ban dong y voi <a href="/chinh-sach-bao-mat">Chinh sach bao mat</a> cua Cong.</p>\n'
)

LOGIN_PAGE = """<h1>Đăng nhập</h1>
<form action="/dang-nhap" method="post">
<input type="hidden" name="csrf_token" value="c0ffee00c0ffee00">
<p><label for="u">Tên đăng nhập</label> <input id="u" name="username" autocomplete="username"></p>
<p><label for="p">Mật khẩu</label> <input id="p" name="password" type="password" autocomplete="current-password"></p>
<p><input type="checkbox" id="r" name="remember"> <label for="r">Ghi nhớ đăng nhập</label></p>
<p><button type="submit">Đăng nhập</button></p>
</form>
<p><a href="/quen-mat-khau">Quên mật khẩu?</a></p>
"""
RESET_PAGE = """<form action="/quen-mat-khau" method="post">
<h1>Lấy lại mật khẩu</h1>
<p><label for="e">Email đã đăng ký</label> <input id="e" name="email" type="email"></p>
<p><button type="submit">Gửi liên kết đặt lại mật khẩu</button></p>
</form>
"""
CONTACT_PAGE = """<h1>Liên hệ</h1>
<p>Địa chỉ: 1 Đường Thử Nghiệm, Hà Nội. Điện thoại: 024 0000 0000.</p>
<form action="/lien-he" method="post">
<input type="hidden" name="csrf_token" value="c0ffee00c0ffee00">
<p><label for="ht">Họ tên</label> <input id="ht" name="hoten"></p>
<p><label for="em">Email</label> <input id="em" name="email" type="email"></p>
<p><label for="nd">Nội dung</label> <textarea id="nd" name="noidung"></textarea></p>
<p><input type="checkbox" id="c" name="dong_y" required> <label for="c">Tôi đồng ý cho Cổng dùng thông tin trên để
trả lời yêu cầu của tôi.</label></p>
<p><button type="submit">Gửi</button></p>
</form>
"""
SEARCH_PAGE = """<h1>Kết quả tìm kiếm</h1>
<form role="search" action="/tim-kiem" method="get"><input type="search" name="q"> <button>Tìm</button></form>
<p>Không có kết quả.</p>
"""

POLICY_SECTIONS = {
    "intro": "<h1>Chính sách bảo vệ dữ liệu cá nhân</h1>\n<p>Cổng dịch vụ công thử nghiệm (bên kiểm soát dữ liệu) "
             "công bố chính sách này theo Nghị định 13/2023/NĐ-CP.</p>\n",
    "purposes": "<h2>1. Mục đích xử lý</h2>\n<p>Dữ liệu được dùng để tạo tài khoản, xác thực người dùng và giải "
                "quyết thủ tục hành chính trực tuyến.</p>\n",
    "data_types": "<h2>2. Loại dữ liệu cá nhân được thu thập</h2>\n<p>Họ tên, ngày sinh, số điện thoại, email, "
                  "địa chỉ liên hệ, số CCCD; thông tin sức khỏe chỉ khi bạn tự nguyện khai báo.</p>\n",
    "parties": "<h2>3. Tổ chức, cá nhân liên quan</h2>\n<p>Dữ liệu không được chia sẻ cho bên thứ ba, trừ đơn vị "
               "vận hành hạ tầng (bên xử lý dữ liệu) theo hợp đồng.</p>\n",
    "retention": "<h2>4. Thời gian lưu trữ</h2>\n<p>Thời gian bắt đầu: khi bạn đăng ký. Dữ liệu được lưu trữ trong "
                 "thời gian tài khoản còn hoạt động và bị hủy 12 tháng sau khi đóng tài khoản.</p>\n",
    "rights": "<h2>5. Quyền của chủ thể dữ liệu</h2>\n<p>Bạn có quyền truy cập, chỉnh sửa, yêu cầu xóa dữ liệu, "
              "phản đối và rút lại sự đồng ý; yêu cầu được giải quyết trong 72 giờ.</p>\n",
    "contact": "<h2>6. Liên hệ</h2>\n<p>Email: baomat@{host} · Điện thoại: 024 0000 0000</p>\n",
}

EN_REGISTER = """<h1>Create an account</h1>
<form action="/en/register" method="post">
<input type="hidden" name="authenticity_token" value="c0ffee">
<p><label for="n">Full name</label> <input id="n" name="full_name" autocomplete="name"></p>
<p><label for="e">Email address</label> <input id="e" name="email" type="email" autocomplete="email"></p>
<p><label for="t">Phone number</label> <input id="t" name="phone" type="tel" autocomplete="tel"></p>
<p><label for="p1">Password</label> <input id="p1" name="password" type="password" autocomplete="new-password"></p>
<p><label for="p2">Confirm password</label> <input id="p2" name="password2" type="password" autocomplete="new-password"></p>
<p><label><input type="checkbox" name="consent_account" required> I agree that my personal data above is processed
to create my account and provide the service, as described in the <a href="/en/privacy">Privacy notice</a>.</label></p>
<p><label><input type="checkbox" name="consent_news"> Send me the newsletter and promotional offers by email
(optional).</label></p>
<p><button type="submit">Create account</button></p>
</form>
"""
EN_POLICY = """<h1>Privacy notice</h1>
<h2>Purposes</h2><p>We use your personal data to create and run your account and to process your applications.</p>
<h2>Data we collect</h2><p>Full name, email address, phone number.</p>
<h2>Who we share it with</h2><p>Our hosting processor only; we never sell data to third parties.</p>
<h2>Retention</h2><p>We keep your data while your account is open and delete it 12 months after closure.</p>
<h2>Your rights</h2><p>You may access, correct or delete your data and withdraw your consent at any time.</p>
<h2>Contact</h2><p>privacy@{host}</p>
"""


@dataclasses.dataclass
class PrivacyPageSet:
    """The compliant site's page bodies; a variant changes one attribute."""

    host: str
    home_head: str = ""
    home_extra: str = ""
    home_cookies: tuple[str, ...] = (GOOD_COOKIE,)
    login_href: str = "/dang-nhap"
    footer: str = FOOTER_LINKS
    register: str = ""
    policy_sections: tuple[str, ...] = tuple(POLICY_SECTIONS)
    english: bool = True

    def __post_init__(self) -> None:
        if not self.register:
            self.register = registration()

    def pages(self) -> dict[str, Page]:
        headers = list(GOOD_HEADERS)
        h = self.host
        policy = "".join(POLICY_SECTIONS[s] for s in self.policy_sections).format(host=h)

        def html(title: str, body: str, lang: str = "vi", head: str = "", footer: str | None = None) -> str:
            foot = self.footer if footer is None else footer
            return _HEAD.format(lang=lang, title=title, extra_head=head) + body + foot + _FOOT

        home_body = HOME_BODY.format(login_href=self.login_href, extra_body=self.home_extra)
        if not self.english:
            home_body = home_body.replace('<li><a href="/en/register">English</a></li>\n', "")
        pages = {
            "/": Page(headers=headers + [("Set-Cookie", c) for c in self.home_cookies],
                      body=html("Cổng dịch vụ công thử nghiệm", home_body, head=self.home_head)),
            "/dang-ky": Page(headers=headers, body=html("Đăng ký tài khoản", self.register)),
            "/dang-nhap": Page(headers=headers, body=html("Đăng nhập", LOGIN_PAGE)),
            "/quen-mat-khau": Page(headers=headers, body=html("Quên mật khẩu", RESET_PAGE)),
            "/lien-he": Page(headers=headers, body=html("Liên hệ", CONTACT_PAGE)),
            "/tim-kiem": Page(headers=headers, body=html("Tìm kiếm", SEARCH_PAGE)),
            "/chinh-sach-bao-mat": Page(headers=headers, body=html("Chính sách bảo mật", policy)),
            "/static/style.css": Page(headers=headers, body="body{font-family:sans-serif}\n",
                                      content_type="text/css; charset=utf-8"),
        }
        if self.english:
            pages["/en/register"] = Page(headers=headers, body=html("Register", EN_REGISTER, lang="en", footer=""))
            pages["/en/privacy"] = Page(headers=headers, body=html("Privacy notice", EN_POLICY.format(host=h),
                                                                   lang="en", footer=""))
        return pages


def registration(*, action: str = "/dang-ky", method: str = "post", sensitive: str = SENSITIVE_WITH_NOTICE,
                 consents: str | None = None, service_checked: bool = False) -> str:
    if consents is None:
        consents = CONSENT_SERVICE.format(checked=" checked" if service_checked else "") + CONSENT_MARKETING
    return REGISTER_FORM.format(action=action, method=method, sensitive=sensitive, consents=consents)


def _site(name: str, expect: str | tuple[str, ...], description: str,
          change: Callable[[PrivacyPageSet], None] | None = None, **spec_changes: object) -> LabSiteSpec:
    pages = PrivacyPageSet(host=host_of(name))
    if change is not None:
        change(pages)
    ids = frozenset([expect]) if isinstance(expect, str) else frozenset(expect)
    return dataclasses.replace(GOOD_SITE, name=name, expect=ids, description=description,
                               pages=pages.pages(), **spec_changes)


def _set(**values: object) -> Callable[[PrivacyPageSet], None]:
    def apply(pages: PrivacyPageSet) -> None:
        for key, value in values.items():
            setattr(pages, key, value)
    return apply


def _http_page(pages: PrivacyPageSet) -> None:
    pages.login_href = f"http://{pages.host}/dang-nhap"


def _http_action(pages: PrivacyPageSet) -> None:
    pages.register = registration(action=f"http://{pages.host}/dang-ky")


def _no_notice(pages: PrivacyPageSet) -> None:
    pages.footer = '<footer><a href="/lien-he">Liên hệ</a></footer>\n'
    pages.english = False
    pages.register = registration(consents=CONSENT_SERVICE.format(checked="").replace(
        ', theo <a href="/chinh-sach-bao-mat">Chính sách bảo mật</a>', "") + CONSENT_MARKETING)


TRACKER_HEAD = (
    '<script async src="https://www.googletagmanager.com/gtag/js?id=G-LAB0000000"></script>\n'
    "<script>window.dataLayer = window.dataLayer || []; function gtag(){dataLayer.push(arguments);}\n"
    "gtag('js', new Date()); gtag('config', 'G-LAB0000000');</script>\n"
)
THIRD_PARTY_HEAD = (
    '<link rel="stylesheet" href="https://fonts.cdn.example/css?family=Roboto">\n'
    # Held back by a consent manager until the visitor agrees: not loaded on first visit.
    '<script type="text/plain" data-consent="analytics" '
    'src="https://www.googletagmanager.com/gtag/js?id=G-LAB0000000"></script>\n'
)
TRACKING_COOKIE = "_ga=GA1.1.1234567890.1700000000; Path=/; Max-Age=63072000; Secure; SameSite=Lax"

PRIVACY_SITES: tuple[LabSiteSpec, ...] = (
    _site("priv-good", (), "Compliant: HTTPS, separate unticked consent boxes (service, marketing), a linked "
          "complete policy in Vietnamese and English, a sensitive field with its notice, a login form, a "
          "password-reset form and a search box."),
    _site("priv-http-action", "privacy.form.insecure_transport",
          "The registration form posts to an http:// action.", _http_action),
    _site("priv-http-page", "privacy.form.insecure_transport",
          "The home page links to the login page over plain HTTP, which serves it.", _http_page,
          http_mode="content"),
    _site("priv-get", "privacy.form.get_method",
          "The registration form (Vietnamese without diacritics, table layout) submits with GET.",
          _set(register=REGISTER_FORM_NO_DIACRITICS.format(action="/dang-ky", method="get",
                                                           consents=CONSENTS_NO_DIACRITICS))),
    _site("priv-third-party", "privacy.form.third_party_action",
          "The registration form posts to another site's host.",
          _set(register=registration(action="https://forms.partner.example/submit"))),
    _site("priv-no-notice", "privacy.notice.missing",
          "No page links a personal-data protection policy.", _no_notice),
    _site("priv-policy-incomplete", "privacy.notice.incomplete",
          "The policy page says nothing of retention or the data subject's rights.",
          _set(policy_sections=("intro", "purposes", "data_types", "parties", "contact"))),
    _site("priv-consent-missing", "privacy.consent.missing",
          "Registration (Vietnamese without diacritics) has no consent box, only 'by registering you agree'.",
          _set(register=REGISTER_FORM_NO_DIACRITICS.format(action="/dang-ky", method="post",
                                                           consents=NO_CONSENT_NO_DIACRITICS))),
    _site("priv-preticked", "privacy.consent.preticked",
          "The processing consent box is ticked by default.", _set(register=registration(service_checked=True))),
    _site("priv-bundled", "privacy.consent.bundled",
          "One box covers terms of use, marketing and sharing with partners.",
          _set(register=registration(consents=CONSENT_BUNDLED))),
    _site("priv-sensitive", "privacy.sensitive.no_notice",
          "Health and religion are asked without saying they are sensitive data.",
          _set(register=registration(sensitive=SENSITIVE_WITHOUT_NOTICE))),
    _site("priv-tracker", ("privacy.tracker.before_consent", "privacy.third_party.hosts"),
          "Google Analytics (gtag.js) loads on first visit.", _set(home_head=TRACKER_HEAD)),
    _site("priv-cookie", "privacy.cookie.before_consent",
          "The home page sets a _ga analytics cookie on first visit.",
          _set(home_cookies=(GOOD_COOKIE, TRACKING_COOKIE))),
    _site("priv-third-party-host", "privacy.third_party.hosts",
          "Loads a stylesheet from a CDN host (info only); the analytics script waits for consent.",
          _set(home_head=THIRD_PARTY_HEAD)),
)

# --- reputation -------------------------------------------------------------------------

REP_LINK_EXTRA = """<p>Tải về: <a href="http://downloads.example/payload.exe">phần mềm</a> ·
<a href="https://www.scam-shop.example/deal">khuyến mãi</a></p>
<script src="https://cdn.evil.test/inject.js"></script>
"""

REPUTATION_SITES: tuple[LabSiteSpec, ...] = (
    _site("rep-domain", "reputation.domain.blocklisted",
          "A clean site whose name is on the sample hosts-file feed."),
    _site("rep-link", "reputation.link.malicious",
          "Links to a listed URL and a listed domain, and loads a listed script.",
          _set(home_extra=REP_LINK_EXTRA)),
)

LISTED_ADDRESS_SITES: tuple[LabSiteSpec, ...] = (
    _site("rep-address", "reputation.address.blocklisted",
          f"A clean site served from {LISTED_ADDRESS_FIRST}, inside the sample feed's listed block."),
)

# --- crawler ----------------------------------------------------------------------------

CRAWL_OTHER_HOST = "other.crawl.test"  # tests point it at a counting listener
HUGE_PAGE_BYTES = 5_000_000

_MALFORMED = (
    b"<!doctype html><html><head><title>Broken</title><meta charset=utf-8>"
    b"<body><div><table><tr><td><a href='/ok-1'>one</td></tr><p><b><i>unclosed"
    b"<form><form action='/x' method=post><input name=email type=email></form>"
    b"<a href=\"/ok-2\" <a href='/bad'\x00>two</a>"
    b"<a href=\"http://[::1\">bad ipv6</a><a href=\"https://h:99999/\">bad port</a>"
    b"<a href=\"javascript:alert(1)\">js</a><a href=\"mailto:x@y.example\">mail</a>"
    b"<!-- unterminated comment <a href='/hidden-in-comment'>"
    b"</html></html><a href='/ok-3'>three</a>"
    b"<script>document.write('<a href=\"/in-script\">')</script><![CDATA[ x ]]><?php echo 1 ?>"
    + b"<div>" * 3000 + b"deep" + b"</div>" * 10
)


def encode_cp1258(text: str) -> bytes:
    """Windows-1258 bytes for Vietnamese text.

    The code page has the vowels with circumflex, breve and horn precomposed but the five tone
    marks only as combining characters, so "ậ" becomes "â" followed by a combining dot below.
    """
    out = bytearray()
    for ch in text:
        try:
            out += ch.encode("cp1258")
            continue
        except UnicodeEncodeError:
            pass
        base, *marks = unicodedata.normalize("NFD", ch)
        for i, mark in enumerate(marks):
            composed = unicodedata.normalize("NFC", base + mark)
            if len(composed) == 1:
                try:
                    out += composed.encode("cp1258")
                except UnicodeEncodeError:
                    continue
                out += "".join(marks[:i] + marks[i + 1:]).encode("cp1258")
                break
        else:
            out += (base + "".join(marks)).encode("cp1258")
    return bytes(out)


def _crawl_pages(host: str) -> dict[str, Page]:
    def page(body: str, title: str = "Crawl lab") -> Page:
        return Page(body=f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title></head>"
                         f"<body>{body}</body></html>")

    links = [
        "/a", "/b", "/huge", "/malformed", "/loop", "/self-loop", "/cp1258", "/latin1", "/bad-utf8",
        f"https://{CRAWL_OTHER_HOST}/", f"http://{CRAWL_OTHER_HOST}/", "//elsewhere.example/x", "/doc.pdf",
        f"https://{host}:8443/other-port", f"http://{host}/plain", "/redirect-off", "/redirect-ok",
        "mailto:someone@example.test", "javascript:void(0)", "#top", "tel:+84240000000",
    ]
    home = "".join(f'<a href="{u}">{u}</a>\n' for u in links)
    huge_head = ('<!doctype html><html><head><meta charset="utf-8"><title>Huge</title></head><body>'
                 '<form method="post" action="/huge"><label for="p">Số điện thoại</label>'
                 '<input id="p" name="p"></form><a href="/early">early</a>')
    huge = huge_head.encode() + b"<p>" + b"x" * HUGE_PAGE_BYTES + b"</p><a href='/late'>late</a></body></html>"
    cp1258 = ('<!doctype html><html><head><meta http-equiv="Content-Type" content="text/html; charset=windows-1258">'
              '<title>Trang mã hóa Windows-1258</title></head><body>'
              '<form method="post" action="/cp1258"><p>Họ và tên <input name="a1"></p>'
              '<p>Số điện thoại <input name="a2"></p></form><a href="/vn-link">Liên kết</a></body></html>')
    latin1 = ("<!doctype html><html><head><title>Caf\u00e9</title></head><body><p>Caf\u00e9 cr\u00e8me</p>"
              "<a href='/latin-link'>l\u00e0</a></body></html>")
    bad_utf8 = (b"<!doctype html><html><head><meta charset='utf-8'><title>Bad \xff\xfe bytes</title></head><body>"
                b"<p>\xc3\x28 \xa0\xa1 \xe2\x82</p><a href='/after-bad-bytes'>next</a></body></html>")
    pages = {
        "/": page(home, "Crawl lab home"),
        "/a": page('<a href="/a1">a1</a>'),
        "/a1": page('<a href="/a2">a2</a>'),
        "/a2": page('<a href="/a3">a3</a>'),
        "/a3": page("end"),
        "/b": page('<a href="/">home</a>'),
        "/huge": Page(body=huge),
        "/malformed": Page(body=_MALFORMED),
        "/loop": Page(status=302, headers=[("Location", "/loop2")]),
        "/loop2": Page(status=302, headers=[("Location", "/loop")]),
        "/self-loop": Page(status=302, headers=[("Location", "/self-loop")]),
        "/redirect-off": Page(status=302, headers=[("Location", f"https://{CRAWL_OTHER_HOST}/landing"),
                                                   ("Set-Cookie", "_ga=GA1.2.3.4; Path=/")]),
        "/redirect-ok": Page(status=302, headers=[("Location", "/b")]),
        "/cp1258": Page(body=encode_cp1258(cp1258), content_type="text/html"),
        "/latin1": Page(body=latin1.encode("latin-1"), content_type="text/html; charset=iso-8859-1"),
        "/bad-utf8": Page(body=bad_utf8),
        "/plain": page('<a href="/plain-child">child</a>', "Plain HTTP page"),
    }
    for path in ("/early", "/late", "/vn-link", "/latin-link", "/after-bad-bytes", "/ok-1", "/ok-2", "/ok-3",
                 "/plain-child"):
        pages[path] = page(path)
    return pages


CRAWL_SITES: tuple[LabSiteSpec, ...] = (
    dataclasses.replace(GOOD_SITE, name="crawl-lab", description="Crawler bounds and hostile pages.",
                        pages=_crawl_pages(host_of("crawl-lab")), http_mode="content"),
)

ALL_SITES: tuple[LabSiteSpec, ...] = PRIVACY_SITES + REPUTATION_SITES + CRAWL_SITES

__all__ = [
    "ALL_SITES",
    "CRAWL_OTHER_HOST",
    "CRAWL_SITES",
    "LISTED_ADDRESS_FIRST",
    "LISTED_ADDRESS_SITES",
    "PRIVACY_SITES",
    "PrivacyPageSet",
    "REPUTATION_SITES",
    "host_of",
    "registration",
]
