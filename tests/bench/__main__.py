"""`make bench`: run the benchmarks against our broker (and nats-server, when installed).

    python -m tests.bench [--impl broker|nats-server|both] [--count N] [--only NAME]
"""

from __future__ import annotations

import argparse
import json
import shutil

from tests.bench import core
from tests.procs import cleanup, start_server

BENCHES = {
    "pub_sub_128": lambda server, count: core.pub_sub_throughput(server, count=count),
    "request_reply": lambda server, count: core.request_reply_latency(server),
}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.bench")
    parser.add_argument("--impl", default="both", choices=["broker", "nats-server", "both"])
    parser.add_argument("--count", type=int, default=2_000_000)
    parser.add_argument("--only", choices=sorted(BENCHES), action="append")
    args = parser.parse_args()
    impls = ["broker", "nats-server"] if args.impl == "both" else [args.impl]
    if "nats-server" in impls and shutil.which("nats-server") is None:
        print("nats-server not installed; benchmarking the broker only")
        impls.remove("nats-server")
    results: dict[str, dict[str, dict]] = {}
    for impl in impls:
        for name in args.only or sorted(BENCHES):
            print(f"{impl}: {name}", flush=True)
            server = start_server(impl, monitor=False)
            try:
                result = BENCHES[name](server, args.count)
            finally:
                server.stop()
                cleanup(server)
            print(f"{impl}: {name}: {json.dumps(result)}", flush=True)
            results.setdefault(name, {})[impl] = result
    print("\nsummary")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
