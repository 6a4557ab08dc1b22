"""Fixtures of the JetStream conformance suite (on top of ../conftest.py).

Reuses the parent suite's machinery: the `impl` parametrization over ``CONFORMANCE_IMPLS``, the
ports-file launch (`_launch`), `start_server`, and the ``NOT_APPLICABLE`` / ``CONFORMANCE_SKIP``
skipping, which applies to these tests unchanged (node ids look like
``test_js_pull.py::test_...``).

Fixtures:

* ``js_server`` (module): a server started with ``-js -sd <tmp>/store``, shared by a module.
  Tests of a module share it, so each test uses its own stream names.
* ``start_js_server`` (function): factory like ``start_server`` that adds ``-js -sd <fresh dir>``.
* ``uniq`` (function): a stream name unique to the test.
* ``raw`` (function): a `jsutil.RawJS` connected to ``js_server``.
* ``nc`` (function, async): a nats-py connection to ``js_server``.

Marker ``nats_29_only``: the test pins nats-server 2.9.10 behaviour that nats-server 2.10 changed
and that compat.md documents in its 2.10 form. An implementation advertising 2.10 may deselect
these with ``-m "not nats_29_only"``.
"""

from __future__ import annotations

import zlib
from collections.abc import AsyncIterator, Callable, Iterator, Sequence

import nats
import pytest

from ..conftest import ORACLE, Impl, Server, _launch
from .jsutil import RawJS


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "nats_29_only: pins nats-server 2.9.10 behaviour that 2.10 changed (compat.md documents "
        "the 2.10 form); deselect with -m 'not nats_29_only'",
    )


@pytest.fixture(scope="module")
def js_server(impl: Impl, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    work = tmp_path_factory.mktemp(f"{impl.name}-js")
    srv = _launch(impl, work, ["-js", "-sd", str(work / "store")])
    yield srv
    srv.stop()


@pytest.fixture
def start_js_server(
    start_server: Callable[..., Server], tmp_path_factory: pytest.TempPathFactory
) -> Callable[..., Server]:
    def factory(extra_args: Sequence[str] = (), config_text: str | None = None) -> Server:
        store = tmp_path_factory.mktemp("js-store")
        return start_server(["-js", "-sd", str(store), *extra_args], config_text)

    return factory


@pytest.fixture
def uniq(request: pytest.FixtureRequest) -> str:
    """A stream name unique to the test (and stable across runs)."""
    return f"T{zlib.crc32(request.node.nodeid.encode()):08x}"


@pytest.fixture
def is_oracle(impl: Impl) -> bool:
    return impl.name == ORACLE


@pytest.fixture
def raw(js_server: Server, is_oracle: bool) -> Iterator[RawJS]:
    client = RawJS(js_server, oracle=is_oracle)
    yield client
    client.close()


@pytest.fixture
def raw_factory(is_oracle: bool) -> Iterator[Callable[[Server], RawJS]]:
    clients: list[RawJS] = []

    def factory(srv: Server) -> RawJS:
        client = RawJS(srv, oracle=is_oracle)
        clients.append(client)
        return client

    yield factory
    for client in clients:
        client.close()


def server_url(srv: Server) -> str:
    return f"nats://{srv.host}:{srv.port}"


@pytest.fixture
async def nc(js_server: Server) -> AsyncIterator[nats.NATS]:
    conn = await nats.connect(server_url(js_server), allow_reconnect=False)
    yield conn
    await conn.close()
