"""Small helpers for cluster tests: clients on a given server, polling with a deadline."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Awaitable, Callable

import nats
import pytest
from nats.aio.client import Client

from tests.clusters import Cluster


async def connect(cluster: Cluster, i: int, **options) -> Client:
    """A client of server i only (no failover to the others unless asked)."""
    options.setdefault("allow_reconnect", False)
    return await nats.connect(cluster.url(i), **options)


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float, what: str,
                     interval: float = 0.1) -> None:
    """Await `check()` until it returns True; fail naming `what` after `timeout` seconds.
    Exceptions from `check` count as "not yet" (a request may time out during an election)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    last: BaseException | None = None
    while loop.time() < deadline:
        try:
            if await check():
                return
        except Exception as exc:
            last = exc
        await asyncio.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last error: {last!r})")


def broker_and_nats_server() -> list:
    """The implementations a cluster test compares: ours, and nats-server when installed."""
    missing = shutil.which("nats-server") is None
    return ["broker", pytest.param("nats-server", marks=pytest.mark.skipif(
        missing, reason="nats-server not installed"))]
