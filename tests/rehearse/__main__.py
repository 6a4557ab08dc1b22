"""`make rehearse`: the three pods of deploy/ on this machine, rolled under load (root only).

    python -m tests.rehearse [--first N] [--while-cut N] [--keep]
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
import time
from pathlib import Path

from tests.deploy.render import KustomizeMissing, render_tls
from tests.rehearse.pods import WORK_PARENT, Pods, PodsUnavailable, load_template
from tests.rehearse.rehearsal import Scale, rehearse


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.rehearse")
    parser.add_argument("--first", type=int, default=1000,
                        help="messages published through nats-0 before the faults")
    parser.add_argument("--while-cut", type=int, default=1000,
                        help="messages published while a pod's link is down")
    parser.add_argument("--tls", action="store_true",
                        help="with deploy/tls/: TLS on the client, route and monitoring ports")
    parser.add_argument("--keep", action="store_true",
                        help="keep the pods' volumes and logs (the work directory) afterwards")
    args = parser.parse_args()
    began = time.monotonic()

    def say(text: str) -> None:
        print(f"[{time.monotonic() - began:6.1f}s] {text}", flush=True)

    try:
        template = load_template(render_tls() if args.tls else None)
    except KustomizeMissing as exc:
        print(f"rehearse: {exc}", file=sys.stderr)
        return 2
    workdir = Path(tempfile.mkdtemp(prefix="rehearse-", dir=WORK_PARENT))
    say(f"pods of StatefulSet {template.name} in namespace {template.namespace}; "
        f"work directory {workdir}")
    try:
        with Pods(template, workdir, say=say) as pods:
            try:
                report = asyncio.run(rehearse(pods, Scale(args.first, args.while_cut), say))
            except BaseException:
                for pod in pods.pods:
                    print(f"--- {pod.name} (last lines) ---\n{pod.log()[-4000:]}",
                          file=sys.stderr)
                raise
    except PodsUnavailable as exc:
        print(f"rehearse: cannot run pods here: {exc}", file=sys.stderr)
        return 2
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    print("\nRehearsal passed:")
    for line in report.lines():
        print(f"  {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
