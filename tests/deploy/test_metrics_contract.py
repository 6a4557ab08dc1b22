"""The alerts and the dashboard read series our /metrics really writes.

A real broker with a stream (with max_bytes) and a pull consumer holding an unacknowledged
message is scraped; every selector of deploy/monitoring/ (its variables filled with ".*") must
match at least one sample, and every label the expressions group or join by must be on it.
"""

from __future__ import annotations

import asyncio
import re
import urllib.request

import nats
from prometheus_client.parser import text_string_to_metric_families

from broker.embedded import running_server
from config.options import RANDOM_PORT
from tests.deploy.promql import by_labels, selectors
from tests.deploy.test_monitoring import dashboard, dashboard_queries, rule_object, rules

MATCH = {
    "=": lambda value, want: value == want,
    "!=": lambda value, want: value != want,
    "=~": lambda value, want: re.fullmatch(want, value) is not None,
    "!~": lambda value, want: re.fullmatch(want, value) is None,
}


def _expressions() -> list[tuple[str, str]]:
    found = [(rule["alert"], rule["expr"]) for rule in rules(rule_object())]
    for title, expr in dashboard_queries(dashboard()):
        found.append((title, re.sub(r"\$\{?(cluster|stream|consumer)\}?", ".*", expr)))
    return found


async def test_alert_and_dashboard_series_exist(tmp_path) -> None:
    async with running_server(jetstream=True, store_dir=str(tmp_path), http_port=RANDOM_PORT,
                              server_name="contract") as server:
        nc = await nats.connect(server.client_url)
        try:
            js = nc.jetstream()
            await js.add_stream(name="ORDERS", subjects=["orders.>"], max_bytes=1_000_000)
            await js.publish("orders.created", b"order 47")
            sub = await js.pull_subscribe("orders.>", durable="billing")
            assert len(await sub.fetch(1, timeout=5)) == 1  # left unacked: ack pending 1
            url = f"http://127.0.0.1:{server.monitor_port}/metrics"
            # The monitor serves on this event loop: fetch from a thread.
            body = await asyncio.to_thread(
                lambda: urllib.request.urlopen(url, timeout=10).read().decode())
        finally:
            await nc.close()

    samples: dict[str, list[dict[str, str]]] = {}
    for family in text_string_to_metric_families(body):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append(sample.labels)

    for where, expr in _expressions():
        grouped = by_labels(expr)
        for name, matchers in selectors(expr):
            if name == "up":  # written by Prometheus, not by the server
                continue
            assert name in samples, f"{where}: /metrics has no {name}"
            matching = [labels for labels in samples[name] if all(
                MATCH[op](labels.get(label, ""), value) for label, op, value in matchers)]
            assert matching, f"{where}: no {name} sample matches {matchers}"
            for labels in matching:
                missing = grouped - set(labels) - ({"consumer_name"} if "_stream_" in name
                                                   else set())
                assert not missing, f"{where}: {name} has no label {missing}"
            if "_stream_" in name or "_consumer_" in name:
                assert any(labels.get("stream_name") == "ORDERS" for labels in matching)
