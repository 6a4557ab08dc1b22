"""`make bench`: run the benchmarks against our broker (and nats-server, when installed):
one server for the core and JetStream ones, a three-server cluster for the `r3_*` ones.

    python -m tests.bench [--impl broker|nats-server|both] [--only NAME] [--count N]
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile

from tests.bench import cluster, core, jetstream, metrics, tls
from tests.procs import cleanup, start_server

# name -> (needs JetStream, run(server, args, store_dir))
BENCHES = {
    "pub_sub_128": (False, lambda s, a, d: core.pub_sub_throughput(s, count=a.count)),
    "request_reply": (False, lambda s, a, d: core.request_reply_latency(s)),
    "js_async_publish": (True, lambda s, a, d: jetstream.async_publish(s, count=a.js_count)),
    "js_sync_publish": (True, lambda s, a, d: jetstream.sync_publish(s)),
    "js_restart": (True, lambda s, a, d: jetstream.restart_with_messages(
        s, d, count=a.restart_count)),
    "js_pull_consume": (True, lambda s, a, d: jetstream.pull_consume(s, count=a.consume_count)),
    "js_push_consume": (True, lambda s, a, d: jetstream.push_consume(s, count=a.consume_count)),
    "metrics_scrape": (True, lambda s, a, d: metrics.scrape_cost(s, streams=a.metrics_streams)),
    "mirror_catchup": (True, lambda s, a, d: jetstream.mirror_catchup(s, count=a.consume_count)),
}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.bench")
    parser.add_argument("--impl", default="both", choices=["broker", "nats-server", "both"])
    parser.add_argument("--count", type=int, default=2_000_000, help="core messages")
    parser.add_argument("--js-count", type=int, default=300_000, help="JetStream publishes")
    parser.add_argument("--restart-count", type=int, default=1_000_000)
    parser.add_argument("--consume-count", type=int, default=200_000)
    parser.add_argument("--r3-count", type=int, default=200_000, help="R3 publishes")
    parser.add_argument("--metrics-streams", type=int, default=1000,
                        help="streams (each with a consumer) behind a /metrics scrape")
    parser.add_argument("--only", choices=sorted([*BENCHES, *cluster.BENCHES, "tls_cost"]),
                        action="append")
    args = parser.parse_args()
    impls = ["broker", "nats-server"] if args.impl == "both" else [args.impl]
    if "nats-server" in impls and shutil.which("nats-server") is None:
        print("nats-server not installed; benchmarking the broker only")
        impls.remove("nats-server")
    results: dict[str, dict[str, dict]] = {}
    scratch = tempfile.mkdtemp(prefix="bench-")
    print("fdatasync on this disk:", jetstream.fdatasync_cost(scratch), flush=True)
    for impl in impls:
        for name in [n for n in args.only or list(BENCHES) if n in BENCHES]:
            needs_js, run = BENCHES[name]
            print(f"{impl}: {name}", flush=True)
            store = tempfile.mkdtemp(prefix="bench-store-")
            extra = ["-js", "-sd", store] if needs_js else []
            server = start_server(impl, extra, monitor=needs_js)
            try:
                result = run(server, args, store)
            finally:
                server.stop()
                cleanup(server)
                shutil.rmtree(store, ignore_errors=True)
            print(f"{impl}: {name}: {json.dumps(result)}", flush=True)
            results.setdefault(name, {})[impl] = result
        for name in args.only or list(cluster.BENCHES):
            if name in cluster.BENCHES:
                results.setdefault(name, {})[impl] = cluster.run(impl, name, args.r3_count)
        if not args.only or "tls_cost" in args.only:
            # Plain and TLS servers side by side: what TLS on the client port costs.
            result = tls.tls_cost(impl)
            print(f"{impl}: tls_cost: {json.dumps(result)}", flush=True)
            results.setdefault("tls_cost", {})[impl] = result
    shutil.rmtree(scratch, ignore_errors=True)
    print("\nsummary")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
