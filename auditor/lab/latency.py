"""A userspace TCP proxy that adds latency, for putting the lab "far away" on loopback.

The kernel here has no netem, so delay is added in userspace: every chunk read from one side
of a proxied connection is held for ``delay_ms`` (plus or minus up to ``jitter_ms``, uniform)
before it is written to the other side, independently in each direction. A request/response
exchange therefore costs one added round trip of ``2 * delay_ms``. Order within a direction
is kept (a chunk never overtakes the previous one, so jitter can only stretch gaps).

Not modelled: the TCP handshake itself (the kernel completes it before the proxy accepts),
bandwidth and packet loss. The upstream connection is opened when a client is accepted.

Everything is bounded: at most ``max_connections`` proxied connections at once (a client
beyond that is closed at once), reads of at most ``chunk_bytes``, and at most
``queue_chunks`` chunks in flight per direction (a full queue stops reading from that side,
which is TCP back-pressure), so one connection holds at most ``chunk_bytes * queue_chunks``
bytes per direction. All listeners share one asyncio loop on one daemon thread; ``stop()``
closes listeners and connections and joins that thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import random
import threading
from dataclasses import dataclass
from types import TracebackType

_EOF = b""


@dataclass(frozen=True)
class Route:
    """Listen on ``listen_address:port`` and forward to ``target_address:port``."""

    listen_address: str
    target_address: str
    port: int


class LatencyProxy:
    """Forwards TCP connections of each :class:`Route` with added one-way delay and jitter."""

    def __init__(
        self,
        routes: list[Route],
        *,
        delay_ms: float,
        jitter_ms: float = 0.0,
        max_connections: int = 2048,
        chunk_bytes: int = 65536,
        queue_chunks: int = 16,
        connect_timeout: float = 10.0,
        seed: int | None = None,
    ) -> None:
        if delay_ms < 0 or jitter_ms < 0:
            raise ValueError("delay_ms and jitter_ms must be >= 0")
        if max_connections < 1 or chunk_bytes < 1 or queue_chunks < 1:
            raise ValueError("max_connections, chunk_bytes and queue_chunks must be >= 1")
        for route in routes:
            for addr in (route.listen_address, route.target_address):
                if not ipaddress.ip_address(addr).is_loopback:
                    raise ValueError(f"latency proxy addresses must be loopback; {addr} is not")
        self.routes = list(routes)
        self.delay = delay_ms / 1000.0
        self.jitter = jitter_ms / 1000.0
        self.max_connections = max_connections
        self.chunk_bytes = chunk_bytes
        self.queue_chunks = queue_chunks
        self.connect_timeout = connect_timeout
        self.active = 0
        self.refused = 0
        self._random = random.Random(seed)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._servers: list[asyncio.Server] = []
        self._tasks: set[asyncio.Task[None]] = set()

    # --- life cycle --------------------------------------------------------------------

    def start(self) -> LatencyProxy:
        """Bind every listener (errors are raised here) and start forwarding."""
        if self._thread is not None:
            raise RuntimeError("latency proxy already started")
        loop = asyncio.new_event_loop()
        ready: asyncio.Future[None] = loop.create_future()
        self._loop = loop
        self._thread = threading.Thread(target=self._run, args=(ready,), name="lab-latency", daemon=True)
        self._thread.start()
        try:
            asyncio.run_coroutine_threadsafe(self._wait(ready), loop).result(timeout=60)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Close listeners and every proxied connection, then end the loop's thread."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        if loop.is_running():
            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(self._shutdown(), loop).result(timeout=10)
            loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        if not thread.is_alive():
            loop.close()
        self._loop = self._thread = None

    def __enter__(self) -> LatencyProxy:
        return self if self._thread is not None else self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def _run(self, ready: asyncio.Future[None]) -> None:
        loop = self._loop
        assert loop is not None
        asyncio.set_event_loop(loop)
        loop.create_task(self._listen(ready))
        loop.run_forever()

    @staticmethod
    async def _wait(ready: asyncio.Future[None]) -> None:
        await ready

    async def _listen(self, ready: asyncio.Future[None]) -> None:
        try:
            for route in self.routes:
                server = await asyncio.start_server(
                    lambda r, w, route=route: self._accept(r, w, route),
                    route.listen_address, route.port, reuse_address=True, backlog=512,
                )
                self._servers.append(server)
        except BaseException as exc:  # handed to start(), which raises it
            ready.set_exception(exc)
            return
        ready.set_result(None)

    async def _shutdown(self) -> None:
        for server in self._servers:
            server.close()
        self._servers = []
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # --- one connection ----------------------------------------------------------------

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, route: Route) -> None:
        if self.active >= self.max_connections:
            self.refused += 1
            writer.transport.abort()
            return
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self.active += 1
        try:
            await self._proxy(reader, writer, route)
        except (TimeoutError, OSError):
            pass
        finally:
            self.active -= 1
            self._tasks.discard(task)
            writer.transport.abort()

    async def _proxy(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, route: Route) -> None:
        """Open the upstream side, then pump both directions until both end or one fails."""
        up_reader, up_writer = await asyncio.wait_for(
            asyncio.open_connection(route.target_address, route.port), self.connect_timeout
        )
        to_server: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue(self.queue_chunks)
        to_client: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue(self.queue_chunks)
        pumps = [
            asyncio.ensure_future(self._read(reader, to_server)),
            asyncio.ensure_future(self._deliver(to_server, up_writer)),
            asyncio.ensure_future(self._read(up_reader, to_client)),
            asyncio.ensure_future(self._deliver(to_client, writer)),
        ]
        try:
            await asyncio.wait(pumps, return_when=asyncio.FIRST_EXCEPTION)
        finally:
            for pump in pumps:
                pump.cancel()
            await asyncio.gather(*pumps, return_exceptions=True)
            up_writer.transport.abort()

    async def _read(self, source: asyncio.StreamReader, queue: asyncio.Queue[tuple[float, bytes]]) -> None:
        """Read one direction and stamp each chunk with its delivery time (never earlier
        than the previous chunk's, so order is kept); an empty chunk marks the end."""
        loop = asyncio.get_running_loop()
        last = 0.0
        while True:
            try:
                data = await source.read(self.chunk_bytes)
            except OSError:
                data = _EOF
            last = max(last, loop.time() + self._sample_delay())
            await queue.put((last, data))
            if data == _EOF:
                return

    async def _deliver(self, queue: asyncio.Queue[tuple[float, bytes]], sink: asyncio.StreamWriter) -> None:
        """Write each chunk at its delivery time; at the end, half-close the sink."""
        loop = asyncio.get_running_loop()
        while True:
            at, data = await queue.get()
            wait = at - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            if data == _EOF:
                if sink.can_write_eof():
                    with contextlib.suppress(OSError):
                        sink.write_eof()
                return
            sink.write(data)
            await sink.drain()

    def _sample_delay(self) -> float:
        if not self.jitter:
            return self.delay
        return max(0.0, self.delay + self._random.uniform(-self.jitter, self.jitter))
