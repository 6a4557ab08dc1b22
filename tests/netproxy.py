"""TCP proxies in front of route ports, for partition tests.

Each server's peers reach it through its proxy (the server advertises the proxy's address). A
proxy reads the dialing server's name from the CONNECT line that opens every route, so a test
can cut one server off from the rest: `isolate("S1")` drops every proxied connection to or from
S1 and refuses new ones until `heal()`. The proxies run on their own event loop in a thread, so
tests that block (waiting for processes) do not stall them.
"""

from __future__ import annotations

import asyncio
import json
import threading
from dataclasses import dataclass, field


@dataclass
class _Link:
    dialer: str
    writers: list[asyncio.StreamWriter] = field(default_factory=list)


class RouteProxies:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()
        self._servers: dict[str, asyncio.AbstractServer] = {}  # target name -> listener
        self._links: dict[str, list[_Link]] = {}  # target name -> live links
        self._isolated: set[str] = set()

    def add(self, target: str, target_port: int) -> int:
        """A proxy for server `target` listening on its route port; returns the proxy's port."""
        async def start() -> int:
            server = await asyncio.start_server(
                lambda r, w: self._serve(target, target_port, r, w), "127.0.0.1", 0)
            self._servers[target] = server
            self._links[target] = []
            return server.sockets[0].getsockname()[1]
        return asyncio.run_coroutine_threadsafe(start(), self.loop).result(5)

    def isolate(self, name: str, seconds: float = 0.0) -> None:
        """Cut `name` off; with `seconds`, heal on its own after that long."""
        def cut() -> None:
            self._isolated.add(name)
            for target, links in self._links.items():
                for link in list(links):
                    if name in (target, link.dialer):
                        for writer in link.writers:
                            writer.close()
            if seconds:
                self.loop.call_later(seconds, self._isolated.clear)
        self.loop.call_soon_threadsafe(cut)

    def heal(self) -> None:
        self.loop.call_soon_threadsafe(self._isolated.clear)

    def close(self) -> None:
        async def stop() -> None:
            for server in self._servers.values():
                server.close()
            for links in self._links.values():
                for link in links:
                    for writer in link.writers:
                        writer.close()
        asyncio.run_coroutine_threadsafe(stop(), self.loop).result(5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)

    async def _serve(self, target: str, port: int, reader: asyncio.StreamReader,
                     writer: asyncio.StreamWriter) -> None:
        try:
            first = await asyncio.wait_for(reader.readline(), 5)
        except (TimeoutError, OSError):
            writer.close()
            return
        dialer = _dialer(first)
        if target in self._isolated or dialer in self._isolated:
            writer.close()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            writer.close()
            return
        link = _Link(dialer, [writer, up_writer])
        self._links[target].append(link)
        up_writer.write(first)
        try:
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        finally:
            self._links[target].remove(link)
            writer.close()
            up_writer.close()


def _dialer(line: bytes) -> str:
    """The server name in a route's opening `CONNECT {...}` line, or ""."""
    if not line.startswith(b"CONNECT "):
        return ""
    try:
        return str(json.loads(line[8:]).get("server_name", ""))
    except ValueError:
        return ""


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            writer.write(data)
            await writer.drain()
    except (OSError, asyncio.CancelledError):
        pass
    finally:
        writer.close()
