"""Are the answers true? A Jepsen-style check of publish outcomes on an R3 stream under faults.

Several writers publish, each with one publish outstanding and no retries, every message with
its own `Nats-Msg-Id`; every publish's outcome is recorded as the client saw it:

    ok              a PubAck (its sequence)
    fail            an error answer (by its err_code), or no responders: must not be stored
    indeterminate   no answer in time, or the connection broke: may or may not be stored

and every answer each publish got is counted (a raw subscription on its reply subject), so a
publish answered twice is seen even when the client took the first answer. Rounds strike the
stream leader (pause past the election timeout, kill, partition, step down) while the writers
write, then heal. At the end every message is published once more with its `Nats-Msg-Id` (a
client retrying after whatever it saw), then the cluster stops and each replica's copy is read
from disk. The verdict counts:

    lost              ok, but not in the stream at the sequence its PubAck named
    fail_but_stored   fail, yet in the stream: the error was not true
    answered_twice    more than one answer to one publish
    stored_twice      one message at two sequences (the retries with its msg id included)
    retry_mismatch    a retry of a stored message not answered as a duplicate of its sequence

All must be 0. `python -m tests.chaos.outcomes` (make outcomes) runs it; a short run is in the
cluster tests.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import nats

from tests.chaos.nemesis import Nemesis, stream_leader
from tests.cluster.faults import (
    PUBLISHER_RANGE,
    STREAM,
    SUBJECT,
    local_state,
    payload_for,
    read_store,
    wait_converged,
)
from tests.clusters import Cluster, wait_for

LEADER_FAULTS = ("pause", "kill_leader", "partition", "stepdown")
ANSWER_TIMEOUT = 3.0  # seconds a writer waits for its PubAck
DUPLICATE_WINDOW = 600  # seconds: the whole run, retries included, stays inside it


@dataclass
class Outcome:
    kind: str  # ok | fail | indeterminate
    seq: int = 0  # ok: the PubAck's sequence
    why: str = ""  # fail: err_code or "no responders"; indeterminate: timeout or the error


@dataclass
class Writer:
    """Publishes message numbers k*PUBLISHER_RANGE + 0, 1, ... one at a time, each once."""

    k: int
    urls: list[str]
    outcomes: dict[int, Outcome] = field(default_factory=dict)
    answers: Counter[int] = field(default_factory=Counter)  # number -> answers received
    next: int = 0

    async def run(self, until: asyncio.Event) -> None:
        nc = await nats.connect(servers=self.urls, max_reconnect_attempts=-1,
                                reconnect_time_wait=0.1, error_cb=_quiet,
                                disconnected_cb=_quiet, reconnected_cb=_quiet)
        inbox = f"_CHK.{self.k}.{random.getrandbits(32)}"
        waiting: dict[int, asyncio.Future[nats.aio.msg.Msg]] = {}

        async def on_answer(msg: nats.aio.msg.Msg) -> None:
            n = int(msg.subject.rsplit(".", 1)[1])
            self.answers[n] += 1
            fut = waiting.get(n)
            if fut is not None and not fut.done():
                fut.set_result(msg)

        await nc.subscribe(f"{inbox}.*", cb=on_answer)
        try:
            while not until.is_set():
                n = self.k * PUBLISHER_RANGE + self.next
                self.next += 1
                waiting[n] = asyncio.get_running_loop().create_future()
                self.outcomes[n] = await self._publish(nc, n, f"{inbox}.{n}", waiting[n])
                del waiting[n]
        finally:
            with contextlib.suppress(Exception):
                await nc.close()

    async def _publish(self, nc: nats.NATS, n: int, reply: str,
                       answer: asyncio.Future[nats.aio.msg.Msg]) -> Outcome:
        try:
            await nc.publish(SUBJECT, payload_for(n), reply=reply,
                             headers={"Nats-Msg-Id": f"m{n}"})
            msg = await asyncio.wait_for(answer, ANSWER_TIMEOUT)
        except TimeoutError:
            return Outcome("indeterminate", why="timeout")
        except Exception as exc:  # the connection broke while sending: maybe sent
            return Outcome("indeterminate", why=type(exc).__name__)
        if msg.headers and msg.headers.get("Status") == "503":
            return Outcome("fail", why="no responders")
        body = json.loads(msg.data)
        if "error" in body:
            return Outcome("fail", why=str(body["error"].get("err_code")))
        return Outcome("ok", seq=body["seq"])


async def _quiet(*args: object) -> None:
    pass


@dataclass
class Verdict:
    rounds: list[str] = field(default_factory=list)
    publishes: int = 0
    ok: int = 0
    fail: Counter[str] = field(default_factory=Counter)
    indeterminate: Counter[str] = field(default_factory=Counter)
    indeterminate_stored: int = 0
    lost: list[int] = field(default_factory=list)
    fail_but_stored: list[int] = field(default_factory=list)
    answered_twice: list[int] = field(default_factory=list)
    stored_twice: list[int] = field(default_factory=list)
    retry_mismatch: list[int] = field(default_factory=list)
    replicas_differ: bool = False
    retried: dict[int, tuple[int, bool]] = field(default_factory=dict)  # n -> (seq, duplicate)

    @property
    def clean(self) -> bool:
        return not (self.lost or self.fail_but_stored or self.answered_twice or
                    self.stored_twice or self.retry_mismatch or self.replicas_differ)

    def lines(self) -> list[str]:
        return [
            f"rounds: {len(self.rounds)} ({'; '.join(self.rounds)})",
            f"publishes {self.publishes}: ok {self.ok}, fail {sum(self.fail.values())} "
            f"{dict(self.fail)}, indeterminate {sum(self.indeterminate.values())} "
            f"{dict(self.indeterminate)} of which stored {self.indeterminate_stored}",
            f"lost {len(self.lost)}, fail_but_stored {len(self.fail_but_stored)}, "
            f"answered_twice {len(self.answered_twice)}, stored_twice "
            f"{len(self.stored_twice)}, retry_mismatch {len(self.retry_mismatch)}, "
            f"replicas differ: {self.replicas_differ}",
        ]


async def run(cluster: Cluster, rounds: list[str], writers: int, round_seconds: float,
              rng: random.Random, say: Callable[[str], None]) -> Verdict:
    """Strike the stream leader once per round with each fault of `rounds` under `writers`."""
    loop = asyncio.get_running_loop()
    verdict = Verdict()
    nc = await nats.connect(servers=cluster.urls())
    await nc.jetstream().add_stream(name=STREAM, subjects=[SUBJECT], num_replicas=3,
                                    duplicate_window=DUPLICATE_WINDOW)
    await nc.close()
    for i in range(cluster.size):
        await loop.run_in_executor(None, wait_for, lambda i=i: local_state(cluster, i), 30,
                                   f"S{i} to open its copy of the stream")
    nemesis = Nemesis(cluster, rng)
    team = [Writer(k + 1, cluster.urls()) for k in range(writers)]
    for number, fault in enumerate(rounds, 1):
        stop = asyncio.Event()
        tasks = [asyncio.ensure_future(w.run(stop)) for w in team]
        await asyncio.sleep(rng.uniform(0.3, 0.6) * round_seconds)  # writing when it strikes
        leader = await stream_leader(cluster)
        what = await loop.run_in_executor(None, nemesis.strike, fault, leader)
        verdict.rounds.append(what)
        await loop.run_in_executor(None, nemesis.heal)
        await asyncio.sleep(0.3 * round_seconds)  # writing after it healed
        stop.set()
        await asyncio.gather(*tasks)
        published = sum(len(w.outcomes) for w in team)
        say(f"round {number}/{len(rounds)}: {what}; {published} publishes so far")
        acked = max((o.seq for w in team for o in w.outcomes.values() if o.kind == "ok"),
                    default=0)
        await loop.run_in_executor(None, wait_converged, cluster, acked, 60.0)
    await _retry_all(cluster, team, verdict)
    last = max(seq for seq, _ in verdict.retried.values())  # the retries stored the rest
    await loop.run_in_executor(None, wait_converged, cluster, last, 60.0)
    for server in cluster.servers:
        server.stop()
    copies = [read_store(cluster, i) for i in range(cluster.size)]
    judge(team, copies, verdict)
    return verdict


async def _retry_all(cluster: Cluster, team: list[Writer], verdict: Verdict) -> None:
    """Every message once more with its msg id, as a client retrying after any outcome: one
    that was stored must come back a duplicate of its sequence."""
    nc = await nats.connect(servers=cluster.urls(), max_reconnect_attempts=-1)
    js = nc.jetstream(timeout=10)
    try:
        for writer in team:
            for n in writer.outcomes:
                ack = await js.publish(SUBJECT, payload_for(n), headers={"Nats-Msg-Id": f"m{n}"})
                verdict.retried[n] = (ack.seq, bool(ack.duplicate))
    finally:
        await nc.close()


def judge(team: list[Writer], copies: list[list[tuple[int, int]]], verdict: Verdict) -> None:
    verdict.replicas_differ = any(copy != copies[0] for copy in copies[1:])
    stored: dict[int, list[int]] = {}
    for seq, n in copies[0]:
        stored.setdefault(n, []).append(seq)
    for writer in team:
        for n, outcome in writer.outcomes.items():
            verdict.publishes += 1
            seqs = stored.get(n, [])
            if len(seqs) > 1:
                verdict.stored_twice.append(n)
            if writer.answers[n] > 1:
                verdict.answered_twice.append(n)
            retry_seq, duplicate = verdict.retried.get(n, (0, False))
            # Stored before the retry: the retry found it (a duplicate), or it is also at a
            # sequence other than the one the retry stored it at.
            stored_before = duplicate or any(seq != retry_seq for seq in seqs)
            mismatch = stored_before and not (duplicate and seqs[:1] == [retry_seq])
            if outcome.kind == "ok":
                verdict.ok += 1
                if seqs[:1] != [outcome.seq]:
                    verdict.lost.append(n)
                mismatch = (retry_seq, duplicate) != (outcome.seq, True)
            if mismatch:
                verdict.retry_mismatch.append(n)
            if outcome.kind == "fail":
                verdict.fail[outcome.why] += 1
                if stored_before:
                    verdict.fail_but_stored.append(n)
            elif outcome.kind == "indeterminate":
                verdict.indeterminate[outcome.why] += 1
                verdict.indeterminate_stored += stored_before


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.chaos.outcomes")
    parser.add_argument("--rounds", type=int, default=16,
                        help="rounds, taking the faults in turn")
    parser.add_argument("--faults", type=lambda v: v.split(","), default=list(LEADER_FAULTS))
    parser.add_argument("--writers", type=int, default=6)
    parser.add_argument("--round-seconds", type=float, default=6.0)
    parser.add_argument("--seed", type=int, default=int(time.time()))
    args = parser.parse_args()
    rounds = [args.faults[i % len(args.faults)] for i in range(args.rounds)]
    began = time.monotonic()

    def say(text: str) -> None:
        print(f"[{time.monotonic() - began:6.1f}s] {text}", flush=True)

    workdir = tempfile.mkdtemp(prefix="outcomes-")
    cluster = Cluster(workdir, proxied=True).start()
    say(f"outcomes: seed {args.seed}, {args.rounds} rounds ({', '.join(args.faults)}), "
        f"{args.writers} writers, cluster in {workdir}")
    try:
        cluster.wait_ready(60)
        verdict = asyncio.run(run(cluster, rounds, args.writers, args.round_seconds,
                                  random.Random(args.seed), say))
    except BaseException:
        print(cluster.logs()[-20000:], flush=True)
        raise
    finally:
        cluster.stop()
    for line in verdict.lines():
        print(line)
    if not verdict.clean:
        print(f"outcomes: FAILED (seed {args.seed}): lost {verdict.lost[:10]}, fail_but_stored "
              f"{verdict.fail_but_stored[:10]}, answered_twice {verdict.answered_twice[:10]}, "
              f"stored_twice {verdict.stored_twice[:10]}, retry_mismatch "
              f"{verdict.retry_mismatch[:10]}")
        return 1
    print("outcomes: OK")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
