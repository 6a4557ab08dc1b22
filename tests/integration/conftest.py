"""Fixtures that start real broker processes (nats-server's harness flags) for nats-py to use."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests.procs import ServerProcess, cleanup, start_server

StartBroker = Callable[..., ServerProcess]


@pytest.fixture
def start_broker(tmp_path) -> Iterator[StartBroker]:
    """Start brokers with extra flags (or a config file); all are killed at teardown."""
    started: list[ServerProcess] = []

    def start(*extra: str, config: str | None = None, monitor: bool = True) -> ServerProcess:
        args = list(extra)
        if config is not None:
            path = tmp_path / f"server{len(started)}.conf"
            path.write_text(config)
            args = ["-c", str(path), *args]
        workdir = tmp_path / f"server{len(started)}"
        workdir.mkdir()
        server = start_server("broker", args, workdir=str(workdir), monitor=monitor)
        started.append(server)
        return server

    yield start
    for server in started:
        cleanup(server)


@pytest.fixture(scope="module")
def shared_broker(tmp_path_factory) -> Iterator[ServerProcess]:
    """One broker for a whole module of tests that do not change server state."""
    server = start_server("broker", [], workdir=str(tmp_path_factory.mktemp("shared")))
    yield server
    cleanup(server)
