"""/metrics in the Prometheus text format.

Metric names follow prometheus-nats-exporter's `gnatsd_varz_*` family, so dashboards built for
nats-server work unchanged. Values are read from the server at scrape time.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from broker.server import Server


class ServerCollector(Collector):
    def __init__(self, server: Server) -> None:
        self.server = server

    def collect(self):  # type: ignore[override]
        s = self.server
        in_msgs, in_bytes, out_msgs, out_bytes = s.totals()
        values = {
            "connections": ("Current client connections", len(s.clients)),
            "total_connections": ("Client connections since start", s.total_connections),
            "subscriptions": ("Current subscriptions", s.sublist.count),
            "in_msgs": ("Messages received from clients", in_msgs),
            "out_msgs": ("Messages sent to clients", out_msgs),
            "in_bytes": ("Payload bytes received from clients", in_bytes),
            "out_bytes": ("Payload bytes sent to clients", out_bytes),
            "slow_consumers": ("Connections dropped as slow consumers", s.slow_consumers),
            "stale_connections": ("Connections dropped as stale", s.stale_connections),
            "routes": ("Current route connections", 0),
            "max_payload": ("Largest message payload accepted", s.options.max_payload),
        }
        for name, (doc, value) in values.items():
            family = GaugeMetricFamily(f"gnatsd_varz_{name}", doc, labels=["server_id"])
            family.add_metric([s.server_id], value)
            yield family


def render_metrics(server: Server) -> str:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ServerCollector(server))
    return generate_latest(registry).decode()
