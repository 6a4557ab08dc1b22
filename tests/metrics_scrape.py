"""Reading /metrics in tests: the parsed text, and the series that mirror STREAM.INFO,
CONSUMER.INFO and /jsz fields (shared by the single-server and the cluster metrics tests)."""

from __future__ import annotations

import json

import nats
from prometheus_client.parser import text_string_to_metric_families

STREAM_SERIES = {  # series -> (block of STREAM.INFO, field); limits come from the config
    "jetstream_stream_total_messages": ("state", "messages"),
    "jetstream_stream_total_bytes": ("state", "bytes"),
    "jetstream_stream_first_seq": ("state", "first_seq"),
    "jetstream_stream_last_seq": ("state", "last_seq"),
    "jetstream_stream_consumer_count": ("state", "consumer_count"),
    "jetstream_stream_subject_count": ("state", "num_subjects"),
    "jetstream_stream_limit_bytes": ("config", "max_bytes"),
    "jetstream_stream_limit_messages": ("config", "max_msgs"),
}
CONSUMER_SERIES = {  # series -> path in CONSUMER.INFO
    "jetstream_consumer_num_pending": ("num_pending",),
    "jetstream_consumer_num_ack_pending": ("num_ack_pending",),
    "jetstream_consumer_num_redelivered": ("num_redelivered",),
    "jetstream_consumer_num_waiting": ("num_waiting",),
    "jetstream_consumer_delivered_stream_seq": ("delivered", "stream_seq"),
    "jetstream_consumer_delivered_consumer_seq": ("delivered", "consumer_seq"),
    "jetstream_consumer_ack_floor_stream_seq": ("ack_floor", "stream_seq"),
    "jetstream_consumer_ack_floor_consumer_seq": ("ack_floor", "consumer_seq"),
}
SERVER_SERIES = {  # series -> /jsz field
    "jetstream_server_total_streams": "streams",
    "jetstream_server_total_consumers": "consumers",
    "jetstream_server_total_messages": "messages",
    "jetstream_server_total_message_bytes": "bytes",
    "jetstream_account_memory_used": "memory",
    "jetstream_account_storage_used": "storage",
    "jetstream_account_max_memory": "reserved_memory",
    "jetstream_account_max_storage": "reserved_storage",
}


class Scrape:
    """A parsed /metrics body: samples by name, each (labels, value)."""

    def __init__(self, text: str) -> None:
        self.samples: dict[str, list[tuple[dict[str, str], float]]] = {}
        self.help: dict[str, str] = {}
        for family in text_string_to_metric_families(text):
            self.help[family.name] = family.documentation
            for sample in family.samples:
                self.samples.setdefault(sample.name, []).append((sample.labels, sample.value))

    def find(self, name: str, **labels: str) -> list[tuple[dict[str, str], float]]:
        return [(lbl, v) for lbl, v in self.samples.get(name, [])
                if all(lbl.get(k) == want for k, want in labels.items())]

    def value(self, name: str, **labels: str) -> float:
        found = self.find(name, **labels)
        assert len(found) == 1, f"{name} {labels}: {len(found)} samples"
        return found[0][1]


async def api_json(nc: nats.NATS, subject: str) -> dict:
    answer = json.loads((await nc.request(subject, b"", timeout=5)).data)
    assert "error" not in answer, answer
    return answer


async def pull(nc: nats.NATS, stream: str, consumer: str, n: int) -> list:
    """One pull request for exactly `n` messages, complete (so not left waiting) once it
    returns."""
    inbox = nc.new_inbox()
    sub = await nc.subscribe(inbox)
    request = {"batch": n, "expires": 10_000_000_000}
    await nc.publish(f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{consumer}",
                     json.dumps(request).encode(), reply=inbox)
    msgs = [await sub.next_msg(timeout=10) for _ in range(n)]
    await sub.unsubscribe()
    return msgs
