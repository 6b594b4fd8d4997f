"""checks.web.net against real loopback servers (127.0.0.151-.156, ephemeral ports, no DNS)."""

from __future__ import annotations

import gzip
import ipaddress
import json
import socket
import ssl
import threading
import time
import unicodedata
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from loopback_http import Body, Handler, LoopbackCert, Route, Server, server_cert, tls_server_context

from auditor.check import CheckContext
from auditor.lab.privacy_sites import encode_cp1258
from auditor.lab.server import reserve_closed_port
from auditor.targets import Resolver, Target
from checks.web import net

PIN_ADDR = "127.0.0.151"
OTHER_ADDR = "127.0.0.152"
HANG_ADDR = "127.0.0.153"
OLD_TLS_ADDR = "127.0.0.154"


def ok(body: bytes = b"ok", ctype: str = "text/plain", extra: list[tuple[str, str]] | None = None) -> Route:
    return lambda _h: (200, [("Content-Type", ctype), *(extra or [])], body)


def redirect(location: str | Callable[[Handler], str], status: int = 302) -> Route:
    def route(h: Handler) -> tuple[int, list[tuple[str, str]], Body]:
        loc = location(h) if callable(location) else location
        return status, [("Location", loc)], b""

    return route


def echo(h: Handler) -> tuple[int, list[tuple[str, str]], Body]:
    body = json.dumps({"host": h.headers.get("Host"), "local": h.connection.getsockname()[0]}).encode()
    return 200, [("Content-Type", "application/json")], body


def big(_h: Handler) -> tuple[int, list[tuple[str, str]], Body]:
    size = 10 * 1024 * 1024
    return (
        200,
        [("Content-Type", "text/plain"), ("Content-Length", str(size))],
        (b"x" * 65536 for _ in range(160)),
    )


def drip_body(_h: Handler) -> tuple[int, list[tuple[str, str]], Body]:
    def slow() -> Iterator[bytes]:
        for _ in range(200):
            time.sleep(0.05)
            yield b"."

    return 200, [("Content-Type", "text/plain"), ("Content-Length", "100000")], slow()


def chain_route(h: Handler) -> tuple[int, list[tuple[str, str]], Body]:
    n = int(h.path.rsplit("/", 1)[1] or 0)
    return 302, [("Location", f"/chain/{n + 1}")], b""


def cookie_then_redirect(h: Handler) -> tuple[int, list[tuple[str, str]], Body]:
    # Cookie-check pattern: same URL again once the cookie is there. Not a loop.
    if "seen=1" in (h.headers.get("Cookie") or ""):
        return 200, [("Content-Type", "text/plain")], b"welcome"
    return 302, [("Location", "/cookiecheck"), ("Set-Cookie", "seen=1; Path=/")], b""


VIETNAMESE = "Cổng thông tin điện tử — Bộ Thông tin và Truyền thông"


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> LoopbackCert:
    return server_cert(tmp_path_factory, "net", ["pin.test", "other.test"])


@pytest.fixture(scope="module")
def servers(certs: LoopbackCert) -> Iterator[dict[str, Any]]:
    # A port with nothing listening.
    closed = reserve_closed_port(PIN_ADDR)
    closed_port = closed.getsockname()[1]

    routes: dict[str, Route] = {
        "/echo": echo,
        "/to-closed": redirect(f"http://pin.test:{closed_port}/"),
        "/big": big,
        "/gzip-bomb": lambda _h: (
            200,
            [("Content-Type", "text/plain"), ("Content-Encoding", "gzip")],
            gzip.compress(b"\0" * (20 * 1024 * 1024)),
        ),
        "/small": ok(b"exactly"),
        "/drip": drip_body,
        "/loop/a": redirect("/loop/b"),
        "/loop/b": redirect("/loop/a"),
        "/chain/": chain_route,
        "/cookiecheck": cookie_then_redirect,
        "/off": redirect("https://elsewhere.test/landing", 301),
        "/to-https": redirect(lambda h: f"https://pin.test:{tls.port}/echo", 301),
        "/dir/rel": redirect("../echo?x=1#frag"),
        "/to-other": redirect(lambda h: f"http://other.test:{other.port}/echo"),
        "/bad-location": redirect("http://[::1"),
        "/cookies": lambda _h: (
            200,
            [
                ("Content-Type", "text/plain"),
                ("Set-Cookie", "a=1; Secure"),
                ("Set-Cookie", "b=2; HttpOnly"),
                ("Set-Cookie", "c=3"),
            ],
            b"cookies",
        ),
        "/cp1258": ok(encode_cp1258(VIETNAMESE), "text/html; charset=windows-1258"),
        "/latin1": ok("café <b>é</b>".encode("latin-1") + b"\xff\xfe\x80", "text/html"),
        "/meta-charset": ok(
            b'<html><head><meta charset="windows-1258"></head>' + encode_cp1258("Hà Nội"), "text/html"
        ),
        "/bogus-charset": ok(b"abc \xff", "text/html; charset=hex"),
        "/chunked": lambda _h: (
            200,
            [("Content-Type", "text/plain"), ("Transfer-Encoding", "chunked")],
            iter([b"5\r\nhello\r\n", b"6\r\n world\r\n", b"0\r\n\r\n"]),
        ),
        "/until-close": lambda _h: (
            200,
            [("Content-Type", "text/plain")],
            iter([b"part one, ", b"part two"]),
        ),
        "/garbage": lambda _h: (0, [], b"SSH-2.0-OpenSSH_9.6\r\n"),
        "/long-header": lambda _h: (0, [], b"HTTP/1.1 200 OK\r\nX-Long: " + b"a" * 70000 + b"\r\n\r\n"),
    }
    plain = Server(PIN_ADDR, routes)
    tls = Server(PIN_ADDR, {"/echo": echo, "/cookies": routes["/cookies"]}, tls_server_context(certs.cert, certs.key))
    other = Server(OTHER_ADDR, {"/echo": echo})

    old_ctx = tls_server_context(certs.cert, certs.key)
    old_tls: Server | None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            old_ctx.minimum_version = ssl.TLSVersion.TLSv1
            old_ctx.maximum_version = ssl.TLSVersion.TLSv1
        old_ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
        old_tls = Server(OLD_TLS_ADDR, {"/echo": echo}, old_ctx)
    except (ssl.SSLError, ValueError):  # OpenSSL built without TLS 1.0
        old_tls = None

    # Accepts connections and never says a word.
    hang = socket.socket()
    hang.bind((HANG_ADDR, 0))
    hang.listen(16)
    held: list[socket.socket] = []

    def hold() -> None:
        while True:
            try:
                conn, _ = hang.accept()
            except OSError:
                return
            held.append(conn)

    threading.Thread(target=hold, daemon=True).start()

    yield {
        "plain": plain,
        "tls": tls,
        "other": other,
        "old_tls": old_tls,
        "hang_port": hang.getsockname()[1],
        "closed_port": closed_port,
    }
    for s in (plain, tls, other, old_tls):
        if s is not None:
            s.stop()
    hang.close()
    closed.close()
    for conn in held:
        conn.close()


def context(timeout: float = 3, overrides: list[str] | None = None, **kw: Any) -> CheckContext:
    return CheckContext(resolver=Resolver(overrides, allow_dns=False), timeout=timeout, **kw)


def target_for(host: str, address: str, port: int) -> Target:
    return Target(url=f"https://{host}:{port}/", host=host, port=port, address=address)


# ------------------------------------------------------------------------------------------
# Sessions and pinning


def test_session_settings() -> None:
    ctx = context(user_agent="custom-agent/1")
    with net.make_session(ctx, target_for("pin.test", PIN_ADDR, 443), pool_size=3) as s:
        assert s.trust_env is False
        assert s.verify is False
        assert s.headers["User-Agent"] == "custom-agent/1"
        adapter = s.get_adapter("https://pin.test/")
        assert isinstance(adapter, net.PinnedAdapter)
        assert s.get_adapter("http://pin.test/") is adapter
        kw = adapter.poolmanager.connection_pool_kw
        assert kw["maxsize"] == 3 and kw["block"] is True
    with net.make_session(context(), target_for("pin.test", PIN_ADDR, 443)) as s:
        assert s.headers["User-Agent"].startswith("auditor/") and "security audit" in s.headers["User-Agent"]


def test_pinned_connect_keeps_host_name(servers: dict[str, Any]) -> None:
    plain: Server = servers["plain"]
    ctx = context()
    with net.make_session(ctx, target_for("pin.test", PIN_ADDR, 443)) as s:
        r = net.fetch(s, f"http://pin.test:{plain.port}/echo", ctx=ctx, max_bytes=10_000)
    assert r.status == 200
    seen = json.loads(r.body)
    assert seen == {"host": f"pin.test:{plain.port}", "local": PIN_ADDR}
    assert r.truncated is False and r.elapsed >= 0


def test_pinned_tls_uses_sni_and_ignores_bad_cert(servers: dict[str, Any]) -> None:
    tls: Server = servers["tls"]
    ctx = context()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no InsecureRequestWarning leaks out
        with net.make_session(ctx, target_for("pin.test", PIN_ADDR, tls.port)) as s:
            r = net.fetch(s, f"https://pin.test:{tls.port}/echo", ctx=ctx, max_bytes=10_000)
    assert json.loads(r.body)["host"] == f"pin.test:{tls.port}"
    assert tls.snis[-1] == "pin.test"


def test_verify_mode_checks_certificate(servers: dict[str, Any], certs: LoopbackCert) -> None:
    tls: Server = servers["tls"]
    target = target_for("pin.test", PIN_ADDR, tls.port)
    ctx = context()
    with net.make_session(ctx, target, verify=True) as s, pytest.raises(net.FetchError) as info:
        net.fetch(s, f"https://pin.test:{tls.port}/echo", ctx=ctx, max_bytes=100)
    assert info.value.kind == "tls" and "\n" not in str(info.value)
    # Trusting the loopback CA, the real host name validates against its SAN.
    ctx = context(ca_file=certs.ca_file)
    with net.make_session(ctx, target, verify=True) as s:
        assert net.fetch(s, f"https://pin.test:{tls.port}/echo", ctx=ctx, max_bytes=100).status == 200


def test_old_tls_only_server_is_readable(servers: dict[str, Any]) -> None:
    old: Server | None = servers["old_tls"]
    if old is None:
        pytest.skip("local OpenSSL cannot serve TLS 1.0")
    ctx = context()
    with net.make_session(ctx, target_for("pin.test", OLD_TLS_ADDR, old.port)) as s:
        try:
            r = net.fetch(s, f"https://pin.test:{old.port}/echo", ctx=ctx, max_bytes=1000)
        except net.FetchError as exc:  # pragma: no cover - depends on the OpenSSL build
            pytest.skip(f"TLS 1.0 unavailable in this OpenSSL build: {exc}")
    assert r.status == 200


def test_other_host_goes_through_resolver(servers: dict[str, Any]) -> None:
    other: Server = servers["other"]
    ctx = context(overrides=[f"other.test:*:{OTHER_ADDR}"])
    with net.make_session(ctx, target_for("pin.test", PIN_ADDR, 443)) as s:
        r = net.fetch(s, f"http://other.test:{other.port}/echo", ctx=ctx, max_bytes=1000)
    assert json.loads(r.body) == {"host": f"other.test:{other.port}", "local": OTHER_ADDR}


def test_other_host_without_override_is_not_resolved(servers: dict[str, Any]) -> None:
    ctx = context()
    with (
        net.make_session(ctx, target_for("pin.test", PIN_ADDR, 443)) as s,
        pytest.raises(net.FetchError) as info,
    ):
        net.fetch(s, "http://unknown.test/echo", ctx=ctx, max_bytes=100)
    assert info.value.kind == "resolve"
    assert "cannot resolve unknown.test" in str(info.value)


def test_environment_proxy_is_ignored(servers: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    plain: Server = servers["plain"]
    for var in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY"):
        monkeypatch.setenv(var, "http://127.0.0.9:9")
    ctx = context()
    with net.make_session(ctx, target_for("pin.test", PIN_ADDR, 443)) as s:
        s.proxies = {"http": "http://127.0.0.9:9"}  # even set explicitly
        r = net.fetch(s, f"http://pin.test:{plain.port}/echo", ctx=ctx, max_bytes=1000)
    assert json.loads(r.body)["local"] == PIN_ADDR


# ------------------------------------------------------------------------------------------
# Bounds


def test_body_cap_reads_only_max_bytes(servers: dict[str, Any]) -> None:
    plain: Server = servers["plain"]
    ctx = context()
    started = time.monotonic()
    with net.make_session(ctx, target_for("pin.test", PIN_ADDR, 443)) as s:
        r = net.fetch(s, f"http://pin.test:{plain.port}/big", ctx=ctx, max_bytes=100_000)
        assert len(r.body) == 100_000 and r.truncated is True
        small = net.fetch(s, f"http://pin.test:{plain.port}/small", ctx=ctx, max_bytes=7)
        assert small.body == b"exactly" and small.truncated is False
    assert time.monotonic() - started < 2


def test_decompressed_size_is_capped(servers: dict[str, Any]) -> None:
    plain: Server = servers["plain"]
    ctx = context()
    with net.make_session(ctx, target_for("pin.test", PIN_ADDR, 443)) as s:
        r = net.fetch(s, f"http://pin.test:{plain.port}/gzip-bomb", ctx=ctx, max_bytes=50_000)
    assert len(r.body) == 50_000 and r.truncated is True and set(r.body) == {0}


def test_hanging_server_is_bounded_by_timeout(servers: dict[str, Any]) -> None:
    ctx = context(timeout=1)
    started = time.monotonic()
    with (
        net.make_session(ctx, target_for("pin.test", HANG_ADDR, 443)) as s,
        pytest.raises(net.FetchError) as info,
    ):
        net.fetch(s, f"http://pin.test:{servers['hang_port']}/", ctx=ctx, max_bytes=100)
    assert time.monotonic() - started < 2.5
    assert info.value.kind == "timeout"
    assert "\n" not in str(info.value) and "Traceback" not in str(info.value)


def test_dripping_body_is_bounded_by_budget(servers: dict[str, Any]) -> None:
    plain: Server = servers["plain"]
    ctx = context(timeout=2)
    started = time.monotonic()
    with net.make_session(ctx, target_for("pin.test", PIN_ADDR, 443)) as s:
        r = net.fetch(s, f"http://pin.test:{plain.port}/drip", ctx=ctx, max_bytes=1_000_000, max_seconds=0.8)
    assert time.monotonic() - started < 2
    assert r.status == 200 and r.truncated is True and 0 < len(r.body) < 100
    assert r.body_error and "time budget" in r.body_error


def test_site_deadline_is_respected(servers: dict[str, Any]) -> None:
    plain: Server = servers["plain"]
    ctx = context(deadline=time.monotonic() - 1)
    with (
        net.make_session(ctx, target_for("pin.test", PIN_ADDR, 443)) as s,
        pytest.raises(net.FetchError) as info,
    ):
        net.fetch(s, f"http://pin.test:{plain.port}/echo", ctx=ctx, max_bytes=100)
    assert info.value.kind == "deadline"


def test_refused_connection_is_one_line(servers: dict[str, Any]) -> None:
    ctx = context()
    with (
        net.make_session(ctx, target_for("pin.test", PIN_ADDR, 443)) as s,
        pytest.raises(net.FetchError) as info,
    ):
        net.fetch(s, f"http://pin.test:{servers['closed_port']}/", ctx=ctx, max_bytes=100)
    assert info.value.kind == "refused"
    assert str(info.value) == "connection to pin.test refused"


# ------------------------------------------------------------------------------------------
# Redirects


def run_follow(
    servers: dict[str, Any], path: str, **kw: Any
) -> tuple[list[net.FetchResult], net.StopReason | None]:
    plain: Server = servers["plain"]
    ctx = context(overrides=kw.pop("overrides", None))
    with net.make_session(ctx, target_for("pin.test", PIN_ADDR, 443)) as s:
        return net.follow(
            s,
            f"http://pin.test:{plain.port}{path}",
            ctx=ctx,
            max_bytes=10_000,
            allowed_hosts=kw.pop("allowed_hosts", {"pin.test"}),
            **kw,
        )


def test_redirect_loop_is_detected(servers: dict[str, Any]) -> None:
    chain, stop = run_follow(servers, "/loop/a")
    assert [r.status for r in chain] == [302, 302]
    assert stop is not None and stop.kind == "loop" and "\n" not in stop


def test_endless_redirects_stop_at_max_redirects(servers: dict[str, Any]) -> None:
    chain, stop = run_follow(servers, "/chain/0", max_redirects=4)
    assert len(chain) == 5  # the first response plus 4 followed redirects
    assert stop == "too many redirects (more than 4)" and stop.kind == "too_many"


def test_same_url_after_new_cookie_is_not_a_loop(servers: dict[str, Any]) -> None:
    chain, stop = run_follow(servers, "/cookiecheck")
    assert stop is None and [r.status for r in chain] == [302, 200] and chain[-1].body == b"welcome"


def test_offsite_redirect_is_not_followed(servers: dict[str, Any]) -> None:
    plain: Server = servers["plain"]
    before = len(plain.seen)
    chain, stop = run_follow(servers, "/off")
    assert len(chain) == 1 and chain[0].status == 301
    assert stop == "https://elsewhere.test/landing" and stop.kind == "offsite"
    assert stop.location == "https://elsewhere.test/landing"
    assert len(plain.seen) == before + 1


def test_other_allowed_host_is_followed(servers: dict[str, Any]) -> None:
    other: Server = servers["other"]
    chain, stop = run_follow(
        servers,
        "/to-other",
        allowed_hosts={"pin.test", "other.test"},
        overrides=[f"other.test:*:{OTHER_ADDR}"],
    )
    assert stop is None and json.loads(chain[-1].body)["local"] == OTHER_ADDR
    assert chain[-1].url == f"http://other.test:{other.port}/echo"


def test_scheme_outside_allowed_set_is_not_followed(servers: dict[str, Any]) -> None:
    tls: Server = servers["tls"]
    chain, stop = run_follow(servers, "/to-https", schemes=frozenset({"http"}))
    assert len(chain) == 1
    assert stop == f"https://pin.test:{tls.port}/echo" and stop.kind == "scheme"
    # ...and followed when allowed, switching to TLS on the same pinned address.
    chain, stop = run_follow(servers, "/to-https")
    assert stop is None and json.loads(chain[-1].body)["host"] == f"pin.test:{tls.port}"


def test_relative_location_is_resolved(servers: dict[str, Any]) -> None:
    plain: Server = servers["plain"]
    chain, stop = run_follow(servers, "/dir/rel")
    assert stop is None
    assert chain[0].location == f"http://pin.test:{plain.port}/echo?x=1"
    assert chain[-1].url == f"http://pin.test:{plain.port}/echo?x=1"


def test_invalid_location_stops(servers: dict[str, Any]) -> None:
    chain, stop = run_follow(servers, "/bad-location")
    assert len(chain) == 1 and stop is not None and stop.kind == "bad_location"


def test_error_mid_chain_keeps_partial_chain(servers: dict[str, Any]) -> None:
    ctx = context()
    plain: Server = servers["plain"]
    with (
        net.make_session(ctx, target_for("pin.test", PIN_ADDR, 443)) as s,
        pytest.raises(net.FetchError) as info,
    ):
        net.follow(
            s, f"http://pin.test:{plain.port}/to-closed", ctx=ctx, max_bytes=100, allowed_hosts={"pin.test"}
        )
    assert info.value.kind == "refused" and [r.status for r in info.value.chain] == [302]


# ------------------------------------------------------------------------------------------
# Headers, cookies, encodings


def test_all_set_cookie_headers_are_kept(servers: dict[str, Any]) -> None:
    plain: Server = servers["plain"]
    ctx = context()
    with net.make_session(ctx, target_for("pin.test", PIN_ADDR, 443)) as s:
        r = net.fetch(s, f"http://pin.test:{plain.port}/cookies", ctx=ctx, max_bytes=100)
    assert r.set_cookies == ["a=1; Secure", "b=2; HttpOnly", "c=3"]
    assert r.header_values("set-cookie") == r.set_cookies
    assert r.headers["content-type"] == "text/plain"


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/cp1258", VIETNAMESE),
        ("/meta-charset", "Hà Nội"),
    ],
)
def test_declared_charsets_decode(servers: dict[str, Any], path: str, expected: str) -> None:
    plain: Server = servers["plain"]
    ctx = context()
    with net.make_session(ctx, target_for("pin.test", PIN_ADDR, 443)) as s:
        r = net.fetch(s, f"http://pin.test:{plain.port}{path}", ctx=ctx, max_bytes=10_000)
    assert r.encoding == "windows-1258"
    assert expected in unicodedata.normalize("NFC", r.text)


@pytest.mark.parametrize("path", ["/latin1", "/bogus-charset"])
def test_undeclared_or_bogus_charset_never_crashes(servers: dict[str, Any], path: str) -> None:
    plain: Server = servers["plain"]
    ctx = context()
    with net.make_session(ctx, target_for("pin.test", PIN_ADDR, 443)) as s:
        r = net.fetch(s, f"http://pin.test:{plain.port}{path}", ctx=ctx, max_bytes=10_000)
    text = r.text
    assert "\ufffd" in text


def test_decode_body_maps_latin1_to_windows_1252() -> None:
    assert net.decode_body(b"\x80 caf\xe9", "iso-8859-1") == "€ café"
    assert net.decode_body(b"ok \xff", "no-such-codec") == "ok \ufffd"
    assert net.decode_body("Việt".encode(), None) == "Việt"


@pytest.mark.parametrize("label", ["punycode", "unicode_escape", "idna", "hex"])
def test_decode_body_ignores_codecs_no_page_is_written_in(label: str) -> None:
    """Punycode decoding is quadratic: 2 MB of it took minutes, far past any fetch budget."""
    body = b"-" + b"a" * 2_000_000
    started = time.monotonic()
    assert net.decode_body(body, label) == body.decode()
    assert time.monotonic() - started < 1
    assert net.decode_body(b"\\x41", label) == "\\x41"


def test_fetch_error_is_one_line() -> None:
    err = net.FetchError("line one\nline two\r\n\x00" + "x" * 1000)
    assert "\n" not in str(err) and len(str(err)) <= 300


@pytest.mark.parametrize(
    ("path", "body"), [("/chunked", b"hello world"), ("/until-close", b"part one, part two")]
)
def test_chunked_and_close_delimited_bodies(servers: dict[str, Any], path: str, body: bytes) -> None:
    plain: Server = servers["plain"]
    ctx = context()
    with net.make_session(ctx, target_for("pin.test", PIN_ADDR, 443)) as s:
        r = net.fetch(s, f"http://pin.test:{plain.port}{path}", ctx=ctx, max_bytes=10_000)
        assert r.body == body and r.truncated is False and r.body_error is None
        capped = net.fetch(s, f"http://pin.test:{plain.port}{path}", ctx=ctx, max_bytes=4)
        assert capped.body == body[:4] and capped.truncated is True


@pytest.mark.parametrize("path", ["/garbage", "/long-header"])
def test_non_http_answers_are_one_line_errors(servers: dict[str, Any], path: str) -> None:
    plain: Server = servers["plain"]
    ctx = context()
    with (
        net.make_session(ctx, target_for("pin.test", PIN_ADDR, 443)) as s,
        pytest.raises(net.FetchError) as info,
    ):
        net.fetch(s, f"http://pin.test:{plain.port}{path}", ctx=ctx, max_bytes=100)
    assert info.value.kind == "protocol"
    assert "\n" not in str(info.value) and len(str(info.value)) <= 300


def test_no_name_lookups(servers: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """Every getaddrinfo call the client makes is for an IP literal (so never reaches DNS)."""
    real = socket.getaddrinfo
    asked: list[str] = []

    def guarded(host: Any, *args: Any, **kwargs: Any) -> Any:
        asked.append(str(host))
        ipaddress.ip_address(str(host).strip("[]"))  # raises for a name
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", guarded)
    plain: Server = servers["plain"]
    tls: Server = servers["tls"]
    ctx = context()
    with net.make_session(ctx, target_for("pin.test", PIN_ADDR, tls.port)) as s:
        chain, stop = net.follow(
            s, f"http://pin.test:{plain.port}/to-https", ctx=ctx, max_bytes=1000, allowed_hosts={"pin.test"}
        )
    assert stop is None and chain[-1].status == 200
    assert asked and set(asked) == {PIN_ADDR}
