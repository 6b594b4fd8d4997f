"""Lab sites for the headless-browser module and the privacy check's browser mode.

``BROWSER_TEST_SITES`` exercise :mod:`checks.web.browser` itself: a page that builds its DOM
by script and sets a cookie from script, pages that try what a hostile site would (an endless
script, alert/confirm dialogs, a download, popups, requests to ``file://``, to unmapped names,
to other loopback addresses), and a second site under the same lab CA whose certificate the
browser must *not* accept (the ``--ca-file`` is trusted for the audited host only).

Start them with :class:`auditor.lab.sites.Lab` on 127.0.8.0/24 (the browser tests' range).
"""

from __future__ import annotations

import dataclasses

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
}

BROWSER_TEST_SITES: tuple[LabSiteSpec, ...] = (
    dataclasses.replace(GOOD_SITE, name="br-basic", description="Script-built page and hostile pages for the "
                        "browser module.", pages=BROWSER_TEST_PAGES),
    # Its own key type, so its leaf key differs from br-basic's (the lab shares one key per type).
    dataclasses.replace(GOOD_SITE, name=OTHER_SITE, key="ec256", description="A second host under the same lab CA.",
                        pages={"/pixel.gif": Page(body=b"GIF89a", content_type="image/gif")}),
)

__all__ = ["BROWSER_TEST_PAGES", "BROWSER_TEST_SITES", "HEADERS", "OTHER_HOST", "OTHER_SITE"]
