"""Dead-lettering with JetStream: messages a consumer gave up on move to a dead-letter subject.

JetStream keeps a message that reached MaxDeliver in its stream and publishes an advisory on
`$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.<stream>.<consumer>`. This watcher listens for those
advisories, fetches the message by sequence and republishes it to a dead-letter subject with
headers naming where it came from. Run it next to your consumers:

    python examples/dead_letter.py --server nats://127.0.0.1:4222 --stream ORDERS \
        --consumer processor --dead-letter dlq.orders
"""

from __future__ import annotations

import argparse
import asyncio
import json

import nats
from nats.aio.msg import Msg


async def forward_dead_letters(nc: nats.NATS, stream: str, consumer: str,
                               dead_letter_subject: str) -> nats.aio.subscription.Subscription:
    """Subscribe to the advisories; each one moves its message to `dead_letter_subject`."""
    jsm = nc.jsm()
    js = nc.jetstream()

    async def on_advisory(msg: Msg) -> None:
        event = json.loads(msg.data)
        seq = event["stream_seq"]
        original = await jsm.get_msg(stream, seq=seq)
        headers = dict(original.headers or {})
        headers.update({
            "Nats-Dead-Letter-Stream": stream,
            "Nats-Dead-Letter-Consumer": consumer,
            "Nats-Dead-Letter-Sequence": str(seq),
            "Nats-Dead-Letter-Deliveries": str(event["deliveries"]),
            "Nats-Dead-Letter-Subject": original.subject,
        })
        await js.publish(dead_letter_subject, original.data or b"", headers=headers)

    advisory = f"$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.{stream}.{consumer}"
    return await nc.subscribe(advisory, cb=on_advisory)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", default="nats://127.0.0.1:4222")
    parser.add_argument("--stream", required=True)
    parser.add_argument("--consumer", required=True)
    parser.add_argument("--dead-letter", required=True, help="subject to republish to")
    args = parser.parse_args()
    nc = await nats.connect(args.server)
    await forward_dead_letters(nc, args.stream, args.consumer, args.dead_letter)
    print(f"forwarding dead letters of {args.stream} > {args.consumer} to {args.dead_letter}")
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main())
