"""Start a broker inside this process, for Python users' own test suites.

    async with running_server(jetstream=True) as server:
        nc = await nats.connect(server.client_url)

`ServerThread` runs the same server on its own event loop in a background thread, for synchronous
code and for fixtures that must not depend on the caller's event loop (see `broker.pytest_plugin`).
"""

from __future__ import annotations

import asyncio
import tempfile
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any

from broker.server import Server
from config.options import RANDOM_PORT, Options


def local_options(jetstream: bool = False, store_dir: str = "", **fields: Any) -> Options:
    """Options for a private server: loopback, a random port, nothing else listening."""
    options = Options(host="127.0.0.1", port=RANDOM_PORT)
    options = replace(options, **fields)
    if jetstream:
        options.jetstream.enabled = True
        options.jetstream.store_dir = store_dir or tempfile.mkdtemp(prefix="broker-js-")
    return options


@asynccontextmanager
async def running_server(options: Options | None = None, *, jetstream: bool = False,
                         **fields: Any) -> AsyncIterator[Server]:
    """A started server on a free port; shut down (gracefully) on exit."""
    server = Server(options or local_options(jetstream=jetstream, **fields))
    await server.start()
    try:
        yield server
    finally:
        await server.shutdown()


class ServerThread:
    """A server on its own event loop in a daemon thread. `start()` returns once it listens."""

    def __init__(self, options: Options | None = None, **fields: Any) -> None:
        self.options = options or local_options(**fields)
        self.server: Server | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    @property
    def client_url(self) -> str:
        assert self.server is not None, "server not started"
        return self.server.client_url

    def start(self, timeout: float = 10.0) -> ServerThread:
        self._thread = threading.Thread(target=self._run, name="broker", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise TimeoutError("broker did not start")
        if self._error is not None:
            raise self._error
        return self

    def stop(self, timeout: float = 10.0) -> None:
        if self._loop is None or self.server is None or self._thread is None:
            return
        future = asyncio.run_coroutine_threadsafe(self.server.shutdown(), self._loop)
        future.result(timeout)
        self._thread.join(timeout)

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        try:
            self.server = Server(self.options)
            await self.server.start()
        except BaseException as exc:  # reported to the starting thread
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        await self.server.wait_stopped()
