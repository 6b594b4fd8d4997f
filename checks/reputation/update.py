"""``auditor feeds update``: fetch a user's feed URLs into a feed directory, safely.

Kept apart from :mod:`checks.reputation.feeds` (parsing and matching) because it is the only
code of the reputation family that downloads: through the bounded client of
:mod:`checks.web.net`, and a file is replaced only by a complete, parseable download (written to
a temporary file, fsynced, renamed), so a failed or empty download keeps the old file.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import os
import re
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from auditor.datafiles import load_yaml
from auditor.errors import AuditorError
from auditor.targets import normalize_host
from checks.reputation.feeds import ENV_FEEDS, ENV_FEEDS_CONFIG, SKIP_SUFFIXES, parse_line

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,100}$")
DEFAULT_UPDATE_MAX_BYTES = 100_000_000


@dataclass(frozen=True)
class FeedSource:
    """One feed a user wants fetched: saved as ``file`` in the feed directory."""

    name: str
    url: str
    max_bytes: int = DEFAULT_UPDATE_MAX_BYTES

    @property
    def file(self) -> str:
        return self.name if "." in self.name else f"{self.name}.txt"


@dataclass
class FeedConfig:
    path: Path
    directory: Path | None
    sources: list[FeedSource]


@dataclass
class UpdateResult:
    name: str
    url: str
    status: str  # updated | unchanged | failed
    entries: int = 0
    bytes: int = 0
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "url": self.url, "status": self.status, "entries": self.entries,
                "bytes": self.bytes, "error": self.error}


def default_config_path() -> Path:
    env = os.environ.get(ENV_FEEDS_CONFIG)
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "auditor" / "feeds.yaml"


def default_update_dir() -> Path:
    env = os.environ.get(ENV_FEEDS)
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "auditor" / "feeds"


def read_feed_config(path: str | Path) -> FeedConfig:
    """Parse a feeds config (YAML)::

        directory: ~/.local/share/auditor/feeds   # optional
        feeds:
          - name: urlhaus-hosts                  # saved as urlhaus-hosts.txt
            url: https://feeds.example/hostfile.txt
            max_bytes: 50000000                  # optional
    """

    cfg = Path(path).expanduser()
    data = load_yaml(cfg, "feeds config")
    if not isinstance(data, dict) or not isinstance(data.get("feeds"), list) or not data["feeds"]:
        raise AuditorError(f"{cfg}: expected a mapping with a non-empty 'feeds' list")
    sources: list[FeedSource] = []
    seen: set[str] = set()
    for i, item in enumerate(data["feeds"], start=1):
        if not isinstance(item, dict) or not item.get("name") or not item.get("url"):
            raise AuditorError(f"{cfg}: feed #{i} needs a 'name' and a 'url'")
        name, url = str(item["name"]), str(item["url"]).strip()
        if not _NAME_RE.match(name) or name.lower().endswith(SKIP_SUFFIXES):
            raise AuditorError(f"{cfg}: feed name {name!r} must be a plain file name (letters, digits, . _ -)")
        if urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).hostname:
            raise AuditorError(f"{cfg}: feed {name!r}: URL must be http:// or https://, got {url!r}")
        try:
            max_bytes = int(item.get("max_bytes") or DEFAULT_UPDATE_MAX_BYTES)
        except (TypeError, ValueError):
            raise AuditorError(f"{cfg}: feed {name!r}: max_bytes must be a whole number") from None
        if max_bytes < 1:
            raise AuditorError(f"{cfg}: feed {name!r}: max_bytes must be positive")
        source = FeedSource(name, url, max_bytes)
        if source.file in seen:
            raise AuditorError(f"{cfg}: two feeds are saved as {source.file}")
        seen.add(source.file)
        sources.append(source)
    directory = Path(str(data["directory"])).expanduser() if data.get("directory") else None
    return FeedConfig(cfg, directory, sources)


def _count_entries(text: str) -> int:
    count = 0
    for line in text.splitlines():
        count += len(parse_line(line))
    return count


def update_feeds(
    config: FeedConfig,
    directory: Path,
    *,
    timeout: float = 30.0,
    resolve: list[str] | None = None,
    ca_file: str | None = None,
    allow_dns: bool = True,
) -> list[UpdateResult]:
    """Fetch every feed of ``config`` into ``directory``; a failed feed keeps its old file."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise AuditorError(f"cannot create feed directory {directory}: {exc.strerror or exc}") from None
    if ca_file and not Path(ca_file).is_file():
        raise AuditorError(f"CA file not found: {ca_file}")
    from auditor.targets import Resolver

    resolver = Resolver(resolve or [], allow_dns=allow_dns)
    return [_update_one(source, directory, resolver, timeout, ca_file) for source in config.sources]


def _update_one(source: FeedSource, directory: Path, resolver: Any, timeout: float,
                ca_file: str | None) -> UpdateResult:
    result = UpdateResult(source.name, source.url, "failed")
    body, error = _download(source, resolver, timeout, ca_file)
    if error is None:
        body, error = _gunzip(body, source.max_bytes)
    if error is not None:
        result.error = error
        return result
    text = body.decode("utf-8", errors="replace")
    entries = _count_entries(text)
    if entries == 0:
        result.error = "the download lists nothing recognisable (an error page?); old file kept"
        return result
    dest = directory / source.file
    data = text.encode("utf-8")
    with contextlib.suppress(OSError):
        if dest.is_file() and dest.read_bytes() == data:
            result.status, result.entries, result.bytes = "unchanged", entries, len(data)
            return result
    error = _replace_file(dest, data)
    if error is not None:
        result.error = error
        return result
    result.status, result.entries, result.bytes = "updated", entries, len(data)
    return result


def _download(source: FeedSource, resolver: Any, timeout: float, ca_file: str | None) -> tuple[bytes, str | None]:
    """The complete body of a feed URL (redirects followed on its own host), or why not."""
    from auditor.check import CheckContext
    from auditor.targets import Target
    from checks.web import net

    try:
        parts = urlsplit(source.url)
        host = normalize_host(parts.hostname or "")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        address = resolver.resolve(host, port)
    except (AuditorError, ValueError) as exc:
        return b"", str(exc)
    ctx = CheckContext(timeout=timeout, deadline=time.monotonic() + 4 * timeout, ca_file=ca_file,
                       resolver=resolver)
    target = Target(url=source.url, host=host, port=port, address=address)
    try:
        with net.make_session(ctx, target, verify=True) as session:
            chain, stop = net.follow(session, source.url, ctx=ctx, max_bytes=source.max_bytes,
                                     same_site_only=False, allowed_hosts={host},
                                     schemes=frozenset({"http", "https"}))
    except net.FetchError as exc:
        return b"", exc.message
    last = chain[-1]
    if stop is not None:
        return b"", f"redirects not followed to the end: {stop}"
    if last.status != 200:
        return b"", f"HTTP {last.status} from {last.url}"
    if last.truncated:
        return b"", last.body_error or f"larger than max_bytes ({source.max_bytes}); old file kept"
    return last.body, None


def _gunzip(body: bytes, max_bytes: int) -> tuple[bytes, str | None]:
    """A gzip body decompressed within ``max_bytes`` (a plain body as it is)."""
    if body[:2] != b"\x1f\x8b":
        return body, None
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(body)) as gz:
            body = gz.read(max_bytes + 1)
    except (OSError, EOFError) as exc:
        return b"", f"bad gzip data: {exc}"
    if len(body) > max_bytes:
        return b"", f"decompressed size over max_bytes ({max_bytes}); old file kept"
    return body, None


def _replace_file(dest: Path, data: bytes) -> str | None:
    """Write ``dest`` atomically (temporary file, fsync, rename); the reason on failure."""
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, dest)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
    except OSError as exc:
        return f"cannot write {dest}: {exc.strerror or exc}"
    return None
