"""Session fixtures of the cluster tests: one Redis, one PostgreSQL database, a 42-site lab
and three worker processes, each started once (see :mod:`cluster_parts`)."""

from __future__ import annotations

import dataclasses
import socket
from collections.abc import Iterator
from contextlib import ExitStack
from typing import Any

import pytest
from cluster_parts import (
    LAB_FIRST,
    LAB_SITE_COUNT,
    RedisServer,
    Worker,
    fresh_database,
    start_workers,
    stop_workers,
)


@pytest.fixture(scope="session")
def cluster_db(pg_url: str) -> str:
    return fresh_database(pg_url, "auditor_cluster")


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def cluster_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from auditor.lab.sites import LAB_SITES, Lab

    pool = list(LAB_SITES)
    specs = [dataclasses.replace(pool[i % len(pool)], name=f"c{i:02d}-{pool[i % len(pool)].name}")
             for i in range(LAB_SITE_COUNT)]
    lab = Lab(tmp_path_factory.mktemp("cluster-lab"), specs, first_address=LAB_FIRST, standard_ports=False)
    lab.start()
    yield lab
    lab.stop()


@pytest.fixture(scope="session")
def workers(redis_server: RedisServer, cluster_db: str, tmp_path_factory: pytest.TempPathFactory,
            ) -> Iterator[list[Worker]]:
    """Three worker processes on the session broker and database."""
    started = start_workers(3, redis_server.url, cluster_db, tmp_path_factory.mktemp("workers"),
                            "--concurrency", "4")
    yield started
    stop_workers(started)


@pytest.fixture(scope="session")
def silent_targets() -> Iterator[list[tuple[str, str]]]:
    """Twelve HTTPS "sites" that accept TCP and never answer (a listen socket nobody accepts
    from): each scan runs into its time bounds. ``(url, --resolve value)`` pairs."""
    with ExitStack() as stack:
        out = []
        for i in range(12):
            address = f"127.0.7.{100 + i}"  # 127.0.7.100 upwards
            sock = stack.enter_context(socket.socket())
            sock.bind((address, 0))
            sock.listen(64)
            port = sock.getsockname()[1]
            host = f"silent{i}.example.test"
            out.append((f"https://{host}:{port}/", f"{host}:{port}:{address}"))
        yield out
