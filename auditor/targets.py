"""Targets: what the user names (URL or bare host) and where we really connect.

Name resolution happens once per host, here, and the resulting address is pinned: every
check connects to ``Target.address`` (or asks the :class:`Resolver`), never re-resolves. That
makes ``--resolve`` overrides apply to every check, and it closes DNS-rebinding games
between the address-policy check and the connection.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

from auditor.errors import AuditorError, TargetError

_MAX_TARGET_LEN = 2048


@dataclass(frozen=True)
class AddressPolicy:
    """Which address ranges a scan may connect to.

    Security staff scanning from a terminal may audit anything (the default), including
    loopback labs. An entry point that takes targets from other people should refuse
    private, loopback and link-local ranges.
    """

    allow_private: bool = True
    allow_loopback: bool = True
    allow_link_local: bool = True

    def check(self, host: str, address: str) -> None:
        ip = ipaddress.ip_address(address)
        if ip.is_loopback and not self.allow_loopback:
            raise TargetError(f"{host} resolves to loopback address {address}, refused by address policy")
        if ip.is_link_local and not self.allow_link_local:
            raise TargetError(f"{host} resolves to link-local address {address}, refused by address policy")
        if ip.is_private and not (ip.is_loopback or ip.is_link_local) and not self.allow_private:
            raise TargetError(f"{host} resolves to private address {address}, refused by address policy")
        if ip.is_unspecified or ip.is_multicast:
            raise TargetError(f"{host} resolves to unusable address {address}")


def parse_resolve(spec: str) -> tuple[str, int | None, str]:
    """Parse a curl-style ``HOST:PORT:ADDR`` override (PORT may be ``*``; IPv6 in brackets)."""
    parts = spec.split(":", 2)
    if len(parts) != 3 or not parts[0] or not parts[2]:
        raise AuditorError(f"--resolve {spec!r}: expected HOST:PORT:ADDR")
    host, port_s, addr = parts
    addr = addr.strip("[]")
    try:
        ipaddress.ip_address(addr)
    except ValueError:
        raise AuditorError(f"--resolve {spec!r}: {addr!r} is not an IP address") from None
    port: int | None
    if port_s == "*":
        port = None
    else:
        try:
            port = int(port_s)
        except ValueError:
            raise AuditorError(f"--resolve {spec!r}: port {port_s!r} is not a number") from None
        if not 0 < port < 65536:
            raise AuditorError(f"--resolve {spec!r}: port {port} out of range")
    return normalize_host(host), port, addr


class Resolver:
    """Resolves host names with ``--resolve`` overrides, optional DNS and an address policy.

    Lookup order for (host, port): an override for exactly that host and port; else any
    override for that host (a name maps to an address, whatever the port, so an override
    for 443 also covers the plain-HTTP port 80 instead of leaking to public DNS); else DNS,
    unless DNS is disabled. Results are cached per host for the life of the resolver.
    """

    def __init__(
        self,
        overrides: list[str] | None = None,
        *,
        allow_dns: bool = True,
        policy: AddressPolicy | None = None,
    ) -> None:
        self.allow_dns = allow_dns
        self.policy = policy or AddressPolicy()
        self._exact: dict[tuple[str, int], str] = {}
        self._any: dict[str, str] = {}
        for spec in overrides or []:
            host, port, addr = parse_resolve(spec)
            if port is None:
                self._any[host] = addr
            else:
                self._exact[(host, port)] = addr
                self._any.setdefault(host, addr)
        self._cache: dict[str, str] = {}
        self._lock = threading.Lock()

    @property
    def overrides(self) -> list[str]:
        """The overrides as ``HOST:PORT:ADDR`` strings (for recording scan parameters)."""
        out = [f"{h}:{p}:{a}" for (h, p), a in self._exact.items()]
        out += [f"{h}:*:{a}" for h, a in self._any.items() if not any(k[0] == h for k in self._exact)]
        return out

    def resolve(self, host: str, port: int) -> str:
        host = normalize_host(host)
        addr = self._exact.get((host, port)) or self._any.get(host)
        if addr is None:
            addr = self._literal_or_dns(host)
        self.policy.check(host, addr)
        return addr

    def _literal_or_dns(self, host: str) -> str:
        try:
            return str(ipaddress.ip_address(host.strip("[]")))
        except ValueError:
            pass
        with self._lock:
            if host in self._cache:
                return self._cache[host]
        if not self.allow_dns:
            raise TargetError(f"cannot resolve {host}: no --resolve override and DNS lookups are disabled")
        try:
            infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError) as exc:
            raise TargetError(f"cannot resolve {host}: {exc}") from None
        # Prefer IPv4 for predictability; fall back to the first address of any family.
        addrs = [str(i[4][0]) for i in infos]
        v4 = [a for a in addrs if ":" not in a]
        addr = (v4 or addrs)[0]
        with self._lock:
            self._cache[host] = addr
        return addr


def is_ip_literal(host: str) -> bool:
    """Whether ``host`` is an IPv4 or IPv6 address (brackets allowed), not a name."""
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def normalize_host(host: str) -> str:
    """Lower-case a host name and convert it to its IDNA (punycode) form."""
    host = host.strip().rstrip(".").lower()
    if not host:
        raise TargetError("empty host name")
    if host.startswith("["):
        return host
    try:
        ipaddress.ip_address(host)
        return host
    except ValueError:
        pass
    try:
        # .rstrip: a trailing "。" (U+3002) or "．" becomes a trailing dot only after IDNA
        host = host.encode("idna").decode("ascii").rstrip(".")
    except UnicodeError:
        raise TargetError(f"invalid host name {host!r}") from None
    allowed = set("abcdefghijklmnopqrstuvwxyz0123456789-._")
    if not set(host) <= allowed or len(host) > 253:
        raise TargetError(f"invalid host name {host!r}")
    return host


@dataclass(frozen=True)
class Target:
    """One site to audit.

    ``url`` is the normalised HTTPS landing URL; ``port`` its HTTPS port; ``http_port`` the
    plain-HTTP port probed for the redirect to HTTPS; ``address`` the pinned address.
    """

    url: str
    host: str
    port: int
    address: str
    path: str = "/"
    http_port: int = 80
    extra: dict[str, str] = field(default_factory=dict, compare=False, hash=False)

    @property
    def origin(self) -> str:
        return origin_of(self.host, self.port)

    @property
    def http_url(self) -> str:
        netloc = self.host if self.http_port == 80 else f"{self.host}:{self.http_port}"
        return urlunsplit(("http", netloc, self.path, "", ""))


def origin_of(host: str, port: int, scheme: str = "https") -> str:
    default = 443 if scheme == "https" else 80
    h = f"[{host}]" if ":" in host and not host.startswith("[") else host
    return f"{scheme}://{h}" if port == default else f"{scheme}://{h}:{port}"


def parse_target(text: str) -> tuple[str, str, int, str, int]:
    """Parse what the user typed into (url, host, https_port, path, http_port).

    Accepts ``https://host[:port]/path``, ``http://host[:port]/path`` (audited as the HTTPS
    site of the same host; the given port is taken as the plain-HTTP port) and bare
    ``host[:port]``. Raises TargetError with a one-line reason otherwise.
    """
    raw = text.strip()
    if not raw:
        raise TargetError("empty target")
    if len(raw) > _MAX_TARGET_LEN:
        raise TargetError("target longer than 2048 characters")
    if any(c.isspace() or ord(c) < 32 or 0x7F <= ord(c) <= 0x9F for c in raw):  # C0, DEL, C1 (CSI...)
        raise TargetError(f"target {raw!r} contains white space or control characters")
    if "://" not in raw:
        raw = "https://" + raw
    try:
        parts = urlsplit(raw)
        port_given = parts.port
    except ValueError as exc:
        raise TargetError(f"invalid URL {text!r}: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in ("https", "http"):
        raise TargetError(f"unsupported URL scheme {parts.scheme!r} in {text!r} (use https:// or http://)")
    if parts.username or parts.password:
        raise TargetError(f"credentials in URL are not supported: {text!r}")
    if not parts.hostname:
        raise TargetError(f"no host in {text!r}")
    host = normalize_host(parts.hostname)
    if port_given == 0:
        raise TargetError(f"port 0 in {text!r}")
    path = parts.path or "/"
    if scheme == "https":
        https_port = port_given or 443
        http_port = 80
    else:
        http_port = port_given or 80
        https_port = 443
    url = origin_of(host, https_port) + urlunsplit(("", "", path, parts.query, ""))
    return url, host, https_port, path, http_port


def make_target(text: str, resolver: Resolver) -> Target:
    url, host, port, path, http_port = parse_target(text)
    address = resolver.resolve(host, port)
    return Target(url=url, host=host, port=port, address=address, path=path, http_port=http_port)


def read_target_list(path: str) -> list[str]:
    """Read a list file: one target per line, ``#`` starts a comment, blank lines ignored."""
    try:
        with open(path, encoding="utf-8") as fh:
            lines = fh.read(10_000_000).splitlines()
    except FileNotFoundError:
        raise AuditorError(f"list file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise AuditorError(f"cannot read list file {path}: {exc}") from None
    out = []
    for line in lines:
        line = line.split("#", 1)[0].strip()
        if line:
            out.append(line)
    return out
