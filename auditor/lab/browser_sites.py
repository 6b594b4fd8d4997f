"""Lab sites for the headless-browser module and the privacy check's browser mode.

``BROWSER_TEST_SITES`` exercise :mod:`checks.web.browser` itself: a page that builds its DOM
by script and sets a cookie from script, pages that try what a hostile site would (an endless
script, alert/confirm dialogs, a download, popups, requests to ``file://``, to unmapped names,
to other loopback addresses), and a second site under the same lab CA whose certificate the
browser must *not* accept (the ``--ca-file`` is trusted for the audited host only).

``BROWSER_PRIVACY_SITES`` are the privacy lab's compliant site built the way script-heavy sites
are, each with one thing only a browser sees: a registration form inserted by script, a tracker
injected by a first-party tag-manager loader, a ``_ga`` cookie set by script, a consent banner
whose refuse control is a small link, a banner that ignores refusal, a single-page-app route
rendered by script; ``brp-good`` has a banner that honours refusal. Each site's ``expect`` is
what browser mode yields; static mode yields nothing on any of them. Their pages drop the lab's
CSP (which would block the inline and third-party scripts, as real sites with tag managers
rarely have one).

Start them with :class:`auditor.lab.sites.Lab` on 127.0.8.0/24 (the browser tests' range).
"""

from __future__ import annotations

import dataclasses
import json

from auditor.lab.privacy_sites import PrivacyPageSet, registration
from auditor.lab.server import Page
from auditor.lab.sites import GOOD_HEADERS, GOOD_SITE, LAB_DOMAIN, LabSiteSpec

# The lab's good headers without its CSP: these pages load third parties on purpose, as real
# sites with tag managers do.
HEADERS: tuple[tuple[str, str], ...] = tuple(h for h in GOOD_HEADERS if h[0] != "Content-Security-Policy")


def _html(title: str, body: str, head: str = "") -> str:
    return (f'<!doctype html>\n<html lang="vi">\n<head>\n<meta charset="utf-8">\n<title>{title}</title>\n{head}'
            f"</head>\n<body>\n{body}</body>\n</html>\n")


def _page(title: str, body: str, head: str = "", headers: list[tuple[str, str]] | None = None) -> Page:
    return Page(headers=list(HEADERS) + (headers or []), body=_html(title, body, head))


def _js(source: str) -> Page:
    return Page(headers=list(HEADERS), body=source, content_type="text/javascript; charset=utf-8")


OTHER_SITE = "br-other"
OTHER_HOST = f"{OTHER_SITE}.{LAB_DOMAIN}"

BASIC_JS = """
(function () {
  var main = document.getElementById('app');
  var form = document.createElement('form');
  form.method = 'post'; form.action = '/dang-ky';
  form.innerHTML = '<label for="e">Email</label> <input id="e" name="email" type="email">';
  main.appendChild(form);
  document.cookie = 'script_cookie=1; path=/; max-age=3600';
  localStorage.setItem('visitor_id', 'abc');
  sessionStorage.setItem('tab_id', 'x');
  // A third-party request by script: refused (name not mapped), but recorded.
  var img = new Image(); img.src = 'https://pixel.unmapped.example/p.gif?x=' + Date.now();
  // The other lab host: mapped, but its certificate must not be trusted by the browser.
  var img2 = new Image(); img2.src = 'https://""" + OTHER_HOST + """/pixel.gif';
})();
"""

HOSTILE_JS = """
(function () {
  try { alert('hello'); } catch (e) {}
  try { confirm('sure?'); } catch (e) {}
  try { window.open('/popup', '_blank'); } catch (e) {}
  fetch('file:///etc/passwd').catch(function () {});
  fetch('http://127.0.0.2:9/').catch(function () {});
  try { new WebSocket('ws://127.0.0.2:9/'); } catch (e) {}
  try { new WebSocket('wss://ws.unmapped.example/socket'); } catch (e) {}
  fetch('http://127.0.0.1:' + (location.port || 443) + '/').catch(function () {});
  var a = document.createElement('a'); a.href = '/download.bin'; a.download = 'x.bin';
  document.body.appendChild(a); a.click();
  document.getElementById('done').textContent = 'ran';
})();
"""

BROWSER_TEST_PAGES = {
    "/": _page("Trang dựng bằng script", '<main id="app"><h1>Đăng ký</h1></main>\n<script src="/app.js"></script>\n',
               headers=[("Set-Cookie", "http_cookie=1; Path=/; Secure; HttpOnly; SameSite=Lax")]),
    "/app.js": _js(BASIC_JS),
    "/hostile": _page("Hostile", '<p id="done">not yet</p>\n<script src="/hostile.js"></script>\n'),
    "/hostile.js": _js(HOSTILE_JS),
    "/popup": _page("Popup", "<p>popup</p>\n"),
    "/download.bin": Page(headers=[("Content-Disposition", 'attachment; filename="x.bin"')], body=b"\0" * 1024,
                          content_type="application/octet-stream"),
    "/spin": _page("Spin", "<p>spins</p>\n<script>function spin(){ for(;;){} }</script>\n"),
    # Eight 400 kB fetches one after another: a byte bound of 1 MB must stop the chain.
    "/big": _page("Big", "<p>big</p>\n<script>(async () => { for (let i = 0; i < 8; i++) { try { "
                  "await (await fetch('/blob' + i + '.bin')).arrayBuffer() } catch (e) { break } } })()</script>\n"),
    **{f"/blob{i}.bin": Page(body=b"x" * 400_000, content_type="application/octet-stream") for i in range(8)},
    # One 30 MB body fetched by script: the byte bound must stop it mid-body.
    "/huge": _page("Huge", "<p>huge</p>\n<script>fetch('/huge.bin').then(r => r.arrayBuffer())"
                   ".catch(() => {})</script>\n"),
    "/huge.bin": Page(body=b"\0" * 30_000_000, content_type="application/octet-stream"),
}

BROWSER_TEST_SITES: tuple[LabSiteSpec, ...] = (
    dataclasses.replace(GOOD_SITE, name="br-basic", description="Script-built page and hostile pages for the "
                        "browser module.", pages=BROWSER_TEST_PAGES),
    # Its own key type, so its leaf key differs from br-basic's (the lab shares one key per type).
    dataclasses.replace(GOOD_SITE, name=OTHER_SITE, key="ec256", description="A second host under the same lab CA.",
                        pages={"/pixel.gif": Page(body=b"GIF89a", content_type="image/gif")}),
)



# --- privacy sites built the way script-heavy sites are (browser mode of the privacy check) -------

_TRACKER_JS = (
    "function auditorLabLoadAnalytics() {\n"
    "  var s = document.createElement('script');\n"
    "  s.async = true; s.src = 'https://www.google-' + 'analytics.com/analytics.js';\n"  # built at run time
    "  document.head.appendChild(s);\n"
    "  document.cookie = '_ga=GA1.1.' + Date.now() + '; path=/; max-age=63072000; SameSite=Lax';\n"
    "}\n"
)
_BANNER = """<div id="cookie-banner" role="dialog" aria-label="Cookie"
 style="position:fixed;bottom:0;left:0;right:0;background:#eee;padding:16px">
<p>Trang này dùng cookie phân tích để cải thiện dịch vụ. Bạn có đồng ý không?</p>
<button id="cb-accept" style="font-size:16px;padding:8px 20px">Đồng ý</button>
{refuse}
</div>
<script src="/static/consent.js"></script>
"""
_REFUSE_BUTTON = '<button id="cb-refuse" style="font-size:16px;padding:8px 20px">Từ chối</button>'
_REFUSE_SMALL_LINK = '<a href="#" id="cb-refuse" style="font-size:10px;color:#999">từ chối</a>'


def _consent_js(refuse_loads_tracker: bool) -> str:
    return _TRACKER_JS + (
        "function hideBanner() { document.getElementById('cookie-banner').style.display = 'none'; }\n"
        "document.getElementById('cb-accept').addEventListener('click', function (e) {\n"
        "  e.preventDefault(); auditorLabLoadAnalytics(); hideBanner(); });\n"
        "document.getElementById('cb-refuse').addEventListener('click', function (e) {\n"
        "  e.preventDefault(); " + ("auditorLabLoadAnalytics(); " if refuse_loads_tracker else "") + "hideBanner(); });\n"
    )


def _mount(html: str, element: str) -> str:
    """A script that inserts ``html`` into #``element`` (the server's HTML holds no form)."""
    return f"document.getElementById({json.dumps(element)}).innerHTML = {json.dumps(html)};\n"


_SPA_SHELL = '<div id="app">Đang tải...</div>\n<script src="/static/spa.js"></script>\n'


def _browser_site(name: str, expect: tuple[str, ...], description: str, *, home_extra: str = "",
                  register: str | None = None, extra: dict[str, Page] | None = None) -> LabSiteSpec:
    pages = PrivacyPageSet(host=f"{name}.{LAB_DOMAIN}", home_extra=home_extra)
    if register is not None:
        pages.register = register
    built = {path: dataclasses.replace(p, headers=[h for h in p.headers if h[0] != "Content-Security-Policy"])
             for path, p in pages.pages().items()}
    built.update(extra or {})
    return dataclasses.replace(GOOD_SITE, name=name, expect=frozenset(expect), description=description, pages=built)


# A consent manager that renders its bar in a shadow root, with no "cookie" or "consent" in any id or
# class: found by its fixed position and its wording. Refusing still loads analytics.
_SHADOW_CMP_JS = _TRACKER_JS + """
(function () {
  var host = document.createElement('div'); host.id = 'x-cmp-7';
  document.body.appendChild(host);
  var root = host.attachShadow({mode: 'open'});
  root.innerHTML = '<div class="bar" style="position:fixed;bottom:0;left:0;right:0;padding:12px;background:#fff">' +
    '<span>Chúng tôi dùng cookie để phân tích lưu lượng truy cập.</span> ' +
    '<button class="b1" style="font-size:15px;padding:8px 18px">Chấp nhận tất cả</button> ' +
    '<button class="b2" style="font-size:15px;padding:8px 18px">Từ chối tất cả</button></div>';
  var hide = function () { host.remove(); };
  root.querySelector('.b1').addEventListener('click', function () { auditorLabLoadAnalytics(); hide(); });
  root.querySelector('.b2').addEventListener('click', function () { auditorLabLoadAnalytics(); hide(); });
})();
"""

BROWSER_PRIVACY_SITES: tuple[LabSiteSpec, ...] = (
    _browser_site("brp-good", (), "Compliant, with a consent banner whose equal refuse button loads nothing; "
                  "accepting loads analytics.",
                  home_extra=_BANNER.format(refuse=_REFUSE_BUTTON),
                  extra={"/static/consent.js": _js(_consent_js(refuse_loads_tracker=False))}),
    _browser_site("brp-script-form", ("privacy.form.get_method",),
                  "The registration form is inserted by script and submits with GET.",
                  register='<div id="reg"></div>\n<script src="/static/reg.js"></script>\n',
                  extra={"/static/reg.js": _js(_mount(registration(method="get"), "reg"))}),
    _browser_site("brp-tag-manager", ("privacy.tracker.before_consent", "privacy.third_party.hosts"),
                  "A first-party tag-manager loader injects Google Analytics on first visit.",
                  home_extra='<script src="/static/tags.js"></script>\n',
                  extra={"/static/tags.js": _js(_TRACKER_JS.replace("document.cookie", "void 0; //")
                                                + "auditorLabLoadAnalytics();\n")}),
    _browser_site("brp-script-cookie", ("privacy.cookie.before_consent",),
                  "A script sets the _ga analytics cookie on first visit.",
                  home_extra='<script src="/static/id.js"></script>\n',
                  extra={"/static/id.js": _js("document.cookie = '_ga=GA1.1.' + Date.now() + "
                                              "'; path=/; max-age=63072000; SameSite=Lax';\n")}),
    _browser_site("brp-small-refuse", ("privacy.consent.no_refusal",),
                  "The banner's refuse control is a small grey link beside the accept button.",
                  home_extra=_BANNER.format(refuse=_REFUSE_SMALL_LINK),
                  extra={"/static/consent.js": _js(_consent_js(refuse_loads_tracker=False))}),
    _browser_site("brp-refusal-ignored", ("privacy.consent.refusal_ignored",),
                  "Clicking the banner's refuse button still loads analytics and sets _ga.",
                  home_extra=_BANNER.format(refuse=_REFUSE_BUTTON),
                  extra={"/static/consent.js": _js(_consent_js(refuse_loads_tracker=True))}),
    _browser_site("brp-shadow-cmp", ("privacy.consent.refusal_ignored",),
                  "A consent bar rendered in a shadow root (no cookie/consent class names); refusing still "
                  "loads analytics.",
                  home_extra='<script src="/static/cmp.js"></script>\n',
                  extra={"/static/cmp.js": _js(_SHADOW_CMP_JS)}),
    _browser_site("brp-spa", ("privacy.consent.preticked",),
                  "A single-page app: /app/dang-ky is rendered by script, its consent box ticked by default.",
                  home_extra='<p><a href="/app/dang-ky">Đăng ký (ứng dụng)</a></p>\n',
                  extra={"/app/dang-ky": _page("Ứng dụng", _SPA_SHELL), "/app": _page("Ứng dụng", _SPA_SHELL),
                         "/static/spa.js": _js(
                             "var routes = {'/app/dang-ky': " + json.dumps(registration(action="/api/dang-ky", service_checked=True))
                             + "};\nvar html = routes[location.pathname] || '<p>Trang chủ ứng dụng</p>';\n"
                             "document.getElementById('app').innerHTML = html;\n")}),
)

__all__ = ["BROWSER_PRIVACY_SITES", "BROWSER_TEST_PAGES", "BROWSER_TEST_SITES", "HEADERS", "OTHER_HOST", "OTHER_SITE"]
