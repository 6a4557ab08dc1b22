"""A NATS-compatible message broker: the client protocol, JetStream, Raft clustering.

For tests and embedding, `broker.embedded` starts a server in this process:

    async with running_server() as server:
        nc = await nats.connect(server.client_url)
"""

from broker.version import PACKAGE_VERSION as __version__

__all__ = ["__version__"]
