"""Blocklist feeds: local files read at scan time, fetched only by ``auditor feeds update``.

A feed directory holds any number of files; every regular file in it is read (hidden and
temporary files and ``.md``/``.yaml`` notes excepted), and the format is detected line by
line, so one directory can mix:

- plain domain lists (``evil.example``, ``*.evil.example``, adblock ``||evil.example^``);
- hosts files (``0.0.0.0 evil.example other.example``: the names are listed, not the address);
- URL lists (``http://evil.example/payload.exe``);
- IP addresses, CIDR blocks and ``a-b`` address ranges (``192.0.2.7``, ``198.51.100.0/24``);
- CSV exports (the first URL, else address, else domain field of each line).

``#``, ``;``, ``!`` and ``//`` start comments. A listed domain also lists its sub-domains. A
URL whose path is just ``/`` lists its host. Each match names its feed file and line, so a
finding can say which feed listed what.

The scanner never downloads anything during a scan: downloading is ``auditor feeds update``,
in :mod:`checks.reputation.update`.
"""

from __future__ import annotations

import contextlib
import csv
import gzip
import io
import ipaddress
import os
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

from auditor.errors import AuditorError, TargetError
from auditor.targets import normalize_host

ENV_FEEDS = "AUDITOR_FEEDS"
ENV_FEEDS_CONFIG = "AUDITOR_FEEDS_CONFIG"
MAX_FILE_BYTES = 512_000_000  # decompressed bytes read from one feed file
MAX_ENTRIES_PER_KEY = 5  # feed lines remembered per listed item (evidence, not counting)
SKIP_SUFFIXES = (".md", ".rst", ".yaml", ".yml", ".tmp", ".part", ".partial", "~", ".bak", ".swp")
_LOCAL_NAMES = frozenset({
    "localhost", "localhost.localdomain", "local", "broadcasthost", "ip6-localhost", "ip6-loopback",
    "ip6-localnet", "ip6-mcastprefix", "ip6-allnodes", "ip6-allrouters", "ip6-allhosts", "0.0.0.0",
})
_DOMAIN_RE = re.compile(r"^(?=.{1,253}$)(?:[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?\.)+[a-z0-9-]{1,63}$")
# C0, DEL and C1 controls: percent-encoded in a normalised URL, as browsers do.
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_ADBLOCK_RE = re.compile(r"^\|\|([^/^$|*]+)\^?(?:\$.*)?$")

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class FeedEntry:
    """Where an item is listed: feed file name and line number."""

    feed: str
    line: int
    kind: str  # domain | url | ip | cidr
    value: str

    def describe(self) -> str:
        return f"{self.feed}:{self.line}"


@dataclass(frozen=True)
class Match:
    """One hit: what was looked up, what the feed lists, and where."""

    item: str
    listed: str
    entry: FeedEntry

    def to_dict(self) -> dict[str, Any]:
        return {"item": self.item, "listed": self.listed, "kind": self.entry.kind,
                "feed": self.entry.feed, "line": self.entry.line}


@dataclass
class FeedFile:
    """What one file of the directory contributed."""

    name: str
    counts: dict[str, int] = field(default_factory=lambda: {"domain": 0, "url": 0, "ip": 0, "cidr": 0})
    skipped: int = 0
    truncated: bool = False
    error: str | None = None

    @property
    def entries(self) -> int:
        return sum(self.counts.values())

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "entries": self.entries, "counts": dict(self.counts),
                "skipped_lines": self.skipped, "truncated": self.truncated, "error": self.error}


# --------------------------------------------------------------------------------------------
# line parsing


def normalize_domain(text: str) -> str | None:
    """A listed or looked-up host name in comparable form, or None if it is not one."""
    value = text.strip().strip(".").lower()
    while value.startswith(("*.", ".")):
        value = value[2:] if value.startswith("*.") else value[1:]
    if not value or value in _LOCAL_NAMES or "." not in value:
        return None
    try:
        ipaddress.ip_address(value)
        return None
    except ValueError:
        pass
    try:
        value = normalize_host(value)
    except TargetError:
        return None
    return value if _DOMAIN_RE.match(value) else None


def normalize_url(text: str) -> str | None:
    """``scheme://host[:port]/path?query`` lower-cased where case does not matter, no fragment."""
    try:
        parts = urlsplit(text.strip())
        port = parts.port
    except ValueError:
        return None
    if not parts.scheme or not parts.hostname:
        return None
    scheme = parts.scheme.lower()
    host = parts.hostname.lower().rstrip(".")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        try:
            host = normalize_host(host)
        except TargetError:
            return None
    else:
        if ":" in host:
            host = f"[{host}]"
    default = {"http": 80, "https": 443, "ftp": 21}.get(scheme)
    netloc = host if port is None or port == default else f"{host}:{port}"
    url = urlunsplit((scheme, netloc, parts.path or "/", parts.query, ""))
    return _CONTROL_RE.sub(lambda m: quote(m.group()), url)  # one line, whatever a feed or site sent


def _network(text: str) -> IPNetwork | None:
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        return None


def _address(text: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        return None


def parse_token(token: str) -> list[tuple[str, str]]:
    """Classify one token: ``[(kind, value)]`` (empty when it is nothing we know)."""
    token = token.strip().strip("\"'")
    if not token:
        return []
    if "://" in token:
        url = normalize_url(token)
        return [("url", url)] if url else []
    if "/" in token:
        net = _network(token)
        return [("cidr", str(net))] if net is not None else []
    addr = _address(token)
    if addr is not None:
        return [("ip", str(addr))]
    if "-" in token and token.count("-") == 1:
        lo, hi = (_address(p) for p in token.split("-"))
        if lo is not None and hi is not None and lo.version == hi.version and lo <= hi:
            return [("cidr", str(n)) for n in ipaddress.summarize_address_range(lo, hi)][:1024]  # type: ignore[arg-type]
    domain = normalize_domain(token)
    return [("domain", domain)] if domain else []


def _strip_comment(line: str) -> str:
    for marker in (" #", "\t#", " ;", "\t;", " //"):
        pos = line.find(marker)
        if pos >= 0:
            line = line[:pos]
    return line.strip()


def parse_line(line: str) -> list[tuple[str, str]]:
    """Every feed item on one line of any supported format (see the module docstring)."""
    line = line.strip().lstrip("\ufeff")
    if not line or line[0] in "#;![" or line.startswith("//"):
        return []
    if line.startswith("||"):
        match = _ADBLOCK_RE.match(line)
        domain = normalize_domain(match.group(1)) if match else None
        return [("domain", domain)] if domain else []
    if line.startswith("@@"):  # adblock exception rule: an allow entry, never a block
        return []
    if "," in line and ("\"" in line or line.count(",") >= 2):
        return _parse_csv(line)
    line = _strip_comment(line)
    tokens = line.replace(",", " ").split()
    if not tokens:
        return []
    first = _address(tokens[0])
    if first is not None and len(tokens) >= 2:
        # hosts file: "ADDRESS name [name...]" lists the names, not the address.
        out: list[tuple[str, str]] = []
        for name in tokens[1:]:
            domain = normalize_domain(name)
            if domain:
                out.append(("domain", domain))
        return out
    return parse_token(tokens[0])


def _parse_csv(line: str) -> list[tuple[str, str]]:
    try:
        fields = next(csv.reader([line]))
    except (csv.Error, StopIteration):
        return []
    found: dict[str, tuple[str, str]] = {}
    for value in fields[:50]:
        for kind, item in parse_token(value):
            rank = {"url": "a", "cidr": "b", "ip": "b", "domain": "c"}[kind]
            found.setdefault(rank, (kind, item))
    return [found[k] for k in sorted(found)][:1]


# --------------------------------------------------------------------------------------------
# a loaded directory


class FeedSet:
    """Every item of every file of one feed directory, indexed for lookups."""

    def __init__(self, directory: Path, *, builtin_sample: bool = False) -> None:
        self.directory = directory
        self.builtin_sample = builtin_sample
        self.files: list[FeedFile] = []
        self.domains: dict[str, list[FeedEntry]] = {}
        self.urls: dict[str, list[FeedEntry]] = {}
        # version -> prefix length -> network address as int -> entries
        self._nets: dict[int, dict[int, dict[int, list[FeedEntry]]]] = {4: {}, 6: {}}

    # -- building

    def add(self, feed: str, line: int, kind: str, value: str) -> None:
        entry = FeedEntry(feed, line, kind, value)
        if kind == "domain":
            bucket = self.domains.setdefault(value, [])
        elif kind == "url":
            bucket = self.urls.setdefault(value, [])
            parts = urlsplit(value)
            if parts.path in ("", "/") and not parts.query and parts.hostname:
                host = normalize_domain(parts.hostname)
                if host:  # a bare-host URL lists the host
                    self.domains.setdefault(host, [])
                    if len(self.domains[host]) < MAX_ENTRIES_PER_KEY:
                        self.domains[host].append(entry)
                addr = _address(parts.hostname)
                if addr is not None:
                    net_bucket = self._net_bucket(ipaddress.ip_network(addr))
                    if len(net_bucket) < MAX_ENTRIES_PER_KEY:
                        net_bucket.append(entry)
        else:
            net = ipaddress.ip_network(value, strict=False)
            bucket = self._net_bucket(net)
        if len(bucket) < MAX_ENTRIES_PER_KEY:
            bucket.append(entry)

    def _net_bucket(self, net: IPNetwork) -> list[FeedEntry]:
        by_len = self._nets[net.version].setdefault(net.prefixlen, {})
        return by_len.setdefault(int(net.network_address), [])

    @property
    def entries(self) -> int:
        return sum(f.entries for f in self.files)

    # -- lookups

    def match_domain(self, host: str) -> list[Match]:
        """The host, or any parent domain of it (two labels or more), listed as a domain."""
        name = normalize_domain(host)
        if name is None:
            return []
        labels = name.split(".")
        out: list[Match] = []
        for i in range(len(labels) - 1):
            candidate = ".".join(labels[i:])
            for entry in self.domains.get(candidate, []):
                out.append(Match(host, candidate, entry))
        return out

    def match_ip(self, address: str) -> list[Match]:
        """The address, or a block containing it, listed as an address/CIDR."""
        addr = _address(address)
        if addr is None:
            return []
        # An IPv4-mapped IPv6 address is looked up as the IPv4 address it carries.
        if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
            addr = addr.ipv4_mapped
        out: list[Match] = []
        bits = addr.max_prefixlen
        value = int(addr)
        for prefixlen, by_net in self._nets[addr.version].items():
            key = value & (((1 << prefixlen) - 1) << (bits - prefixlen)) if prefixlen else 0
            for entry in by_net.get(key, []):
                out.append(Match(address, entry.value, entry))
        return out

    def match_url(self, url: str) -> list[Match]:
        """The exact URL listed, or its host listed as a domain or address."""
        norm = normalize_url(url)
        if norm is None:
            return []
        out = [Match(url, norm, e) for e in self.urls.get(norm, [])]
        host = urlsplit(norm).hostname or ""
        if _address(host) is not None:
            out += [Match(url, m.listed, m.entry) for m in self.match_ip(host)]
        else:
            out += [Match(url, m.listed, m.entry) for m in self.match_domain(host)]
        return out

    def lookup(self, item: str) -> list[Match]:
        """Whatever ``item`` is (URL, address or host name), every match."""
        item = item.strip()
        if "://" in item:
            return self.match_url(item)
        if _address(item) is not None:
            return self.match_ip(item)
        return self.match_domain(item)

    def summary(self) -> dict[str, Any]:
        return {
            "directory": str(self.directory),
            "builtin_sample": self.builtin_sample,
            "entries": self.entries,
            "files": [f.to_dict() for f in self.files],
        }


def _feed_files(directory: Path) -> list[Path]:
    try:
        names = sorted(os.listdir(directory))
    except OSError as exc:
        raise AuditorError(f"cannot read feed directory {directory}: {exc.strerror or exc}") from None
    out = []
    for name in names:
        if name.startswith(".") or name.lower().endswith(SKIP_SUFFIXES):
            continue
        path = directory / name
        if path.is_file():
            out.append(path)
    return out


def _read_lines(path: Path, info: FeedFile) -> Iterator[str]:
    with open(path, "rb") as raw:
        head = raw.read(2)
        raw.seek(0)
        stream: Any = gzip.GzipFile(fileobj=raw) if head == b"\x1f\x8b" else raw
        reader = io.TextIOWrapper(stream, encoding="utf-8", errors="replace", newline=None)
        size = 0
        for line in reader:
            size += len(line)
            if size > MAX_FILE_BYTES:
                info.truncated = True
                return
            yield line[:4096]


def load_feed_dir(directory: str | Path, *, builtin_sample: bool = False) -> FeedSet:
    """Read every feed file of ``directory`` (no caching; see :func:`feeds_for`)."""
    path = Path(directory).expanduser()
    if not path.is_dir():
        raise AuditorError(f"feed directory not found: {path}")
    feeds = FeedSet(path, builtin_sample=builtin_sample)
    files = _feed_files(path)
    if not files:
        raise AuditorError(f"feed directory {path} holds no feed files")
    for file in files:
        info = FeedFile(file.name)
        try:
            for number, line in enumerate(_read_lines(file, info), start=1):
                items = parse_line(line)
                if not items:
                    stripped = line.strip()
                    if stripped and stripped[0] not in "#;![" and not stripped.startswith("//"):
                        info.skipped += 1
                    continue
                for kind, value in items:
                    feeds.add(file.name, number, kind, value)
                    info.counts[kind] += 1
        except (OSError, EOFError, gzip.BadGzipFile) as exc:
            info.error = f"{type(exc).__name__}: {exc}"[:300]
        feeds.files.append(info)
    if feeds.entries == 0:
        errors = "; ".join(f"{f.name}: {f.error}" for f in feeds.files if f.error)
        raise AuditorError(f"feed directory {path} lists nothing usable" + (f" ({errors})" if errors else ""))
    return feeds


_cache: dict[str, tuple[tuple[Any, ...], FeedSet]] = {}
_cache_lock = threading.Lock()


def _signature(path: Path) -> tuple[Any, ...]:
    sig: list[Any] = []
    for file in _feed_files(path):
        with contextlib.suppress(OSError):
            st = file.stat()
            sig.append((file.name, st.st_size, st.st_mtime_ns))
    return tuple(sig)


def feed_dir_for(options: dict[str, Any] | None, sample_dir: Path) -> tuple[Path, bool]:
    """The feed directory to use: ``feeds_dir`` option, else $AUDITOR_FEEDS, else ``sample_dir``
    (the policy's built-in sample, ``PolicyFiles.sample_feeds``).

    Returns the path and whether it is the built-in sample.
    """
    chosen = (options or {}).get("feeds_dir") or os.environ.get(ENV_FEEDS)
    if chosen:
        path = Path(str(chosen)).expanduser()
        # Naming the sample explicitly does not make it a real blocklist.
        return path, path.resolve() == sample_dir.resolve()
    return sample_dir, True


def feeds_for(options: dict[str, Any] | None, sample_dir: Path) -> FeedSet:
    """The loaded feeds for a scan, re-read only when a file of the directory changed."""
    path, sample = feed_dir_for(options, sample_dir)
    if not path.is_dir():
        raise AuditorError(f"feed directory not found: {path}")
    key = str(path.resolve())
    sig = _signature(path)
    with _cache_lock:
        cached = _cache.get(key)
        if cached is not None and cached[0] == sig:
            return cached[1]
    feeds = load_feed_dir(path, builtin_sample=sample)
    with _cache_lock:
        _cache[key] = (sig, feeds)
    return feeds


__all__ = [
    "FeedEntry",
    "FeedFile",
    "FeedSet",
    "Match",
    "feed_dir_for",
    "feeds_for",
    "load_feed_dir",
    "normalize_domain",
    "normalize_url",
    "parse_line",
]
