"""A pytest fixture for projects that test against a NATS server: `nats_server`.

Installed as a pytest plugin with this package; the fixture starts an in-process broker (no
subprocess, no Go binary) on a free port and yields it:

    async def test_roundtrip(nats_server):
        nc = await nats.connect(nats_server.client_url)
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from broker.embedded import ServerThread


@pytest.fixture
def nats_server(tmp_path) -> Iterator[ServerThread]:
    """A fresh broker with JetStream enabled, its store under the test's tmp_path."""
    with ServerThread(jetstream=True, store_dir=str(tmp_path / "jetstream")) as handle:
        yield handle
