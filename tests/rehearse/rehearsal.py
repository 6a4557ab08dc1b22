"""The rehearsal: what an operator does to the StatefulSet in its first week, on three real pods
(`tests.rehearse.pods`), checked the way the product promises: nothing acknowledged is lost or
stored twice.

1. Start: the three pods start together (podManagementPolicy Parallel); the mesh forms through
   the pod DNS names; each pod's startup and readiness probes pass; time to ready per pod.
2. An R3 stream and an R3 durable consumer created through nats-0; messages published there
   with acks and read back through nats-2 only.
3. A pod killed (its node died: SIGKILL, no preStop) and started again on its volume: ready
   again, and its own copy of the stream catches up.
4. A pod's link cut: publishing goes on through the other two; the cut-off pod stays live (its
   liveness probe passes, so Kubernetes would not restart it); the link back, it catches up.
5. A rolling update, highest ordinal first as the StatefulSet controller does it: preStop (lame
   duck), SIGTERM, exit within the grace period, start on the same volume, startup + readiness
   before the next pod goes; all the while a publisher publishes with acks through the client
   Service (every pod's address) and moves to the other pods as its server drains.
6. The end: every pod stopped gracefully, each pod's copy read from its volume: every acked
   message once, at the sequence its PubAck named, all copies equal.

`python -m tests.rehearse` (make rehearse) runs it and prints where it is; the test in
tests/rehearse/test_rehearsal.py runs the same with fewer messages.
"""

from __future__ import annotations

import asyncio
import ssl
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import nats
from nats.js.api import ConsumerConfig, StreamConfig

from tests.cluster.faults import (
    PUBLISHER_RANGE,
    STREAM,
    SUBJECT,
    Publisher,
    check_copies,
    number_of,
    read_stream_copy,
)
from tests.deploy.render import load_config
from tests.rehearse.pods import Pod, Pods, PodTemplate, Probe

CONSUMER = "billing"
T = TypeVar("T")


@dataclass
class Scale:
    """How much to publish in each step."""

    first: int = 200  # published through nats-0, read through nats-2
    while_cut: int = 200  # published while a pod's link is down
    ready_timeout: float = 120.0


@dataclass
class Report:
    refused_starts: dict[str, str] = field(default_factory=dict)  # mistake -> the log's words
    ready_at_start: dict[str, float] = field(default_factory=dict)
    restart_after_kill: float = 0.0
    catch_up_after_link: float = 0.0
    roll: dict[str, dict[str, float]] = field(default_factory=dict)
    while_cut: dict[str, int] = field(default_factory=dict)  # probe -> status, on its node
    acked_during_roll: int = 0
    publish_errors_during_roll: int = 0
    servers_used_during_roll: list[list[str]] = field(default_factory=list)  # per publisher
    readiness_seen_while_draining: dict[str, list[int]] = field(default_factory=dict)
    # Pods that led Raft groups when they drained, and handed them over in lame duck.
    handed_over: list[str] = field(default_factory=list)
    total_acked: int = 0
    lost: int = -1
    duplicates: int = -1
    copies_checked: int = 0
    elapsed: float = 0.0

    def lines(self) -> list[str]:
        out = [f"{what}: refused at start: {words}" for what, words in
               self.refused_starts.items()]
        out += ["time to ready at start: " + ", ".join(
            f"{k} {v:.1f}s" for k, v in self.ready_at_start.items())]
        out.append(f"kill and restart on its volume: ready again in {self.restart_after_kill:.1f}s")
        out.append(f"link cut: probes on its node {self.while_cut}; restored: caught up "
                   f"{self.catch_up_after_link:.1f}s after")
        for name, t in self.roll.items():
            out.append(f"roll {name}: drained and exited in {t['stop']:.1f}s, ready again "
                       f"{t['ready']:.1f}s after start, {t['total']:.1f}s in all; readiness "
                       f"seen {self.readiness_seen_while_draining[name]}")
        out.append(f"pods that handed Raft leadership over in lame duck: "
                   f"{', '.join(self.handed_over)}")
        moves = "; ".join(" -> ".join(used) for used in self.servers_used_during_roll)
        out.append(f"acked during the roll: {self.acked_during_roll} (publish retries "
                   f"{self.publish_errors_during_roll}; the publishers moved {moves})")
        out.append(f"total acked {self.total_acked}; lost {self.lost}; stored twice "
                   f"{self.duplicates}; copies checked {self.copies_checked}")
        out.append(f"rehearsal took {self.elapsed:.1f}s")
        return out


def store_dir_in_pod(template: PodTemplate, secrets: dict[str, Path] | None = None) -> str:
    """The JetStream store_dir the ConfigMap's config gives a pod (parsed by our own loader).
    `secrets`: where a Secret volume's files are on this host (the loader opens the TLS files
    the config names), by mountPath."""
    (files,) = template.config_files.values()
    (name, text), = ((n, t) for n, t in files.items() if n.endswith(".conf"))
    for mount_path, source in (secrets or {}).items():
        text = text.replace(mount_path, str(source))
    env = {var: f"{template.name}-0" for var in template.pod_name_env}
    with tempfile.TemporaryDirectory() as tmp:
        return load_config(text, env, Path(tmp) / name).jetstream.store_dir


async def rehearse(pods: Pods, scale: Scale, say: Callable[[str], None]) -> Report:
    report = Report()
    began = time.monotonic()
    t = pods.template
    loop = asyncio.get_running_loop()

    async def in_thread(fn, *args):
        return await loop.run_in_executor(None, fn, *args)

    pods.build_image()

    # 0. What a mistake looks like: refused at start, in the pod's log, naming file, line, key.
    refused = _refused_starts(pods)
    for what, line in refused.items():
        say(f"{what}: refused at start, the pod's log says: {line}")
    report.refused_starts = refused

    # 1. Start all three at once.
    say(f"starting {t.replicas} pods ({', '.join(p.name for p in pods.pods)}) on "
        f"{', '.join(p.address for p in pods.pods)}")
    for pod in pods.pods:
        pods.start(pod)
    waits = [in_thread(pods.wait_started_and_ready, pod, scale.ready_timeout)
             for pod in pods.pods]
    for pod, took in zip(pods.pods, await asyncio.gather(*waits), strict=True):
        report.ready_at_start[pod.name] = took
        say(f"  {pod.name} started and ready after {took:.1f}s")
    for pod in pods.pods:
        routez = pods.get_json(pod, "/routez")
        names = sorted(r["remote_name"] for r in routez["routes"])
        expected = sorted(p.name for p in pods.pods if p is not pod)
        assert names == expected, f"{pod.name} routes to {names}, not {expected}"
    say("  mesh formed through the pod DNS names: every pod routes to the other two")

    # 2. An R3 stream on nats-0, read on nats-2.
    n0, n2 = pods.pods[0], pods.pods[-1]
    nc = await nats.connect(n0.client_url, allow_reconnect=False, tls=pods.client_tls)
    js = nc.jetstream(timeout=10)
    await js.add_stream(StreamConfig(name=STREAM, subjects=[SUBJECT], num_replicas=3))
    await js.add_consumer(STREAM, ConsumerConfig(durable_name=CONSUMER, num_replicas=3,
                                                 ack_wait=30))
    await nc.close()
    acked: dict[int, int] = {}
    first = Publisher([n0.client_url], tls=pods.client_tls)
    await first.run(scale.first)
    acked.update(first.acked)
    say(f"R3 stream {STREAM} and consumer {CONSUMER} created on {n0.name}; "
        f"{len(first.acked)} messages acked there")
    got = await _fetch_all(n2, len(acked), pods.client_tls)
    assert got == sorted(acked), f"{n2.name} delivered {len(got)} of {len(acked)} messages"
    say(f"  all {len(got)} read back through {n2.name} (consumer {CONSUMER}, acked)")

    # 3. Kill a pod and start it again on its volume.
    victim = pods.pods[1]
    say(f"killing {victim.name} (SIGKILL, no preStop) and starting it again on its volume")
    pods.kill(victim)
    pods.start(victim)
    report.restart_after_kill = await in_thread(pods.wait_started_and_ready, victim,
                                                scale.ready_timeout)
    await _wait_copy(pods, victim, max(acked.values()), scale.ready_timeout)
    say(f"  {victim.name} ready again after {report.restart_after_kill:.1f}s, its copy holds "
        f"seq {max(acked.values())}")

    # 4. Cut a pod's link; publish through the others; restore it.
    cut = pods.pods[2]
    others = [p for p in pods.pods if p is not cut]
    say(f"cutting {cut.name}'s link")
    pods.cut_link(cut)
    during = Publisher([p.client_url for p in others], tls=pods.client_tls)
    await during.run(scale.while_cut, first=len(acked))
    acked.update(during.acked)
    say(f"  {len(during.acked)} more acked through {', '.join(p.name for p in others)} "
        f"while {cut.name} was cut off")
    # Cut off long enough to notice: its full health check fails (no meta leader in reach).
    full = Probe("/healthz", t.startup.port, 1, 1, t.startup.timeout)
    await _until_async(lambda: in_thread(pods.probe_on_node, cut, full), lambda s: s != 200,
                       scale.ready_timeout, f"{cut.name} to notice it is cut off")
    live = await in_thread(pods.probe_on_node, cut, t.liveness)
    assert cut.running() and live == 200, \
        f"{cut.name}'s liveness failed ({live}) while cut off: Kubernetes would restart it"
    report.while_cut = {"full /healthz": await in_thread(pods.probe_on_node, cut, full),
                        "liveness": live,
                        "readiness": await in_thread(pods.probe_on_node, cut, t.readiness)}
    say(f"  {cut.name} cut off, as its kubelet sees it: {report.while_cut}")
    pods.restore_link(cut)
    restored = time.monotonic()
    await _wait_copy(pods, cut, max(acked.values()), scale.ready_timeout)
    report.catch_up_after_link = time.monotonic() - restored
    say(f"  link restored; {cut.name} stayed live and caught up to seq {max(acked.values())} "
        f"in {report.catch_up_after_link:.1f}s")

    # 5. Roll every pod through lame duck, highest ordinal first, under publishers: one
    # connected to each pod first (as the client Service spreads them), each free to move.
    stop_publishing = asyncio.Event()
    urls = [p.client_url for p in pods.pods]
    rollers = [Publisher(urls[k:] + urls[:k], give_up_after=300.0, randomize=False,
                         tls=pods.client_tls)
               for k in range(len(urls))]
    publishing = [asyncio.ensure_future(roller.run(PUBLISHER_RANGE // 2,
                                                   first=(k + 1) * PUBLISHER_RANGE,
                                                   until=stop_publishing))
                  for k, roller in enumerate(rollers)]

    def rolled() -> int:
        return sum(len(roller.acked) for roller in rollers)

    await _until(lambda: rolled() >= 100, 30, "the publishers to get going")
    say(f"rolling update under load ({len(rollers)} publishers, one on each pod; preStop lame "
        "duck, SIGTERM, start, startup + readiness)")
    for pod in reversed(pods.pods):
        await _roll_one(pods, pod, report, scale, say, rolled)
    after_roll = rolled()
    await _until(lambda: rolled() >= after_roll + 100, 30,
                 "the publishers to go on after the roll")
    stop_publishing.set()
    await asyncio.gather(*publishing)
    for roller in rollers:
        acked.update(roller.acked)
    report.acked_during_roll = rolled()
    report.publish_errors_during_roll = sum(roller.errors for roller in rollers)
    report.servers_used_during_roll = [_collapse(roller.servers_used) for roller in rollers]
    # The meta group has a leader, so some pod led it when it drained and had to hand it over.
    assert report.handed_over, "no pod handed Raft leadership over in lame duck"
    say(f"  {rolled()} acked while rolling; the publishers moved "
        f"{'; '.join(' -> '.join(used) for used in report.servers_used_during_roll)}")
    for k, used in enumerate(report.servers_used_during_roll):
        assert len(set(used)) >= 2, f"publisher {k} never left {used[0]}, which was rolled"

    # 6. Every copy from its volume.
    last = max(acked.values())
    for pod in pods.pods:
        await _wait_copy(pods, pod, last, scale.ready_timeout)
    say(f"every pod's copy reached seq {last}; stopping the pods gracefully to read them")
    for pod in pods.pods:
        pod.process.terminate()  # type: ignore[union-attr]
    for pod in pods.pods:
        assert pod.process is not None
        assert await in_thread(pod.process.wait, 30) == 0, pod.log()[-3000:]
    secrets = {path: pods.pods[0].root / volume for path, volume in t.mounts
               if volume in t.secret_volumes}
    where = store_dir_in_pod(t, secrets)
    copies = {pod.name: read_stream_copy(pods.store_dir(pod, where)) for pod in pods.pods}
    check_copies(copies, acked)
    numbers = [n for _, n in copies[pods.pods[0].name]]
    report.total_acked = len(acked)
    report.lost = len(set(acked) - set(numbers))
    report.duplicates = len(numbers) - len(set(numbers))
    report.copies_checked = len(copies)
    report.elapsed = time.monotonic() - began
    return report


def _refused_starts(pods: Pods) -> dict[str, str]:
    """A ConfigMap with a mistyped key, and a pod without POD_NAME: each start is refused with
    a message naming the file (as the pod sees it), line and key, and no traceback."""
    t = pods.template
    pod = pods.pods[0]
    (files,) = t.config_files.values()
    (name, text), = ((n, c) for n, c in files.items() if n.endswith(".conf"))
    mount = next(path for path, volume in t.mounts if volume in t.config_files)
    lines = text.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("listen:"))
    lines[at] = lines[at].replace("listen:", "listne:")
    seen = {}
    code, log = pods.run_broken(pod, config_files={**files, name: "\n".join(lines) + "\n"})
    expected = f'{mount}/{name}:{at + 1}:1: unknown field "listne"'
    assert code != 0 and expected in log and "Traceback" not in log, (code, log)
    seen["a mistyped key in the ConfigMap"] = expected
    code, log = pods.run_broken(pod, without_env=frozenset(t.pod_name_env))
    assert code != 0 and "'POD_NAME' can not be found" in log and "Traceback" not in log, \
        (code, log)
    seen["a pod without POD_NAME"] = next(line for line in log.splitlines() if "POD_NAME" in line)
    return seen


async def _roll_one(pods: Pods, pod: Pod, report: Report, scale: Scale,
                    say: Callable[[str], None], acked: Callable[[], int]) -> None:
    loop = asyncio.get_running_loop()
    began = time.monotonic()
    at_start = acked()
    seen: list[int] = []
    draining = asyncio.Event()

    async def watch_readiness() -> None:
        # What the endpoints controller sees while the pod drains.
        while not draining.is_set():
            seen.append(await loop.run_in_executor(None, pods.probe, pod,
                                                   pods.template.readiness))
            await asyncio.sleep(0.2)

    watcher = asyncio.ensure_future(watch_readiness())
    try:
        stopped = await loop.run_in_executor(None, pods.stop, pod)
    finally:
        draining.set()
        await watcher
    seen.append(pods.probe(pod, pods.template.readiness))  # gone: no answer
    report.readiness_seen_while_draining[pod.name] = _collapse(seen)
    # Documented: a draining pod leaves JetStream, so readiness fails (503) until it exits (no
    # answer); once failed it never passes again. (A pod with no clients exits at once.)
    failed = next(i for i, status in enumerate(seen) if status != 200)
    assert all(status != 200 for status in seen[failed:]), \
        f"{pod.name} was ready again while it drained: {seen}"
    assert seen[-1] == 0, f"{pod.name} still answers after it exited: {seen}"
    pods.start(pod)
    ready = await loop.run_in_executor(None, pods.wait_started_and_ready, pod,
                                       scale.ready_timeout)
    report.roll[pod.name] = {"stop": stopped, "ready": ready,
                             "total": time.monotonic() - began}
    say(f"  {pod.name}: drained and exited in {stopped:.1f}s (readiness seen: "
        f"{report.readiness_seen_while_draining[pod.name]}), ready again after {ready:.1f}s; "
        f"{acked() - at_start} acked meanwhile")
    if "handed over leadership" in _previous_log(pod):
        report.handed_over.append(pod.name)
    else:
        say(f"  note: {pod.name} led no Raft group when it drained")


def _previous_log(pod: Pod) -> str:
    path = pod.root / f"container-{pod.starts - 1}.log"
    return path.read_text(errors="replace") if path.exists() else ""


async def _fetch_all(pod: Pod, count: int, tls: ssl.SSLContext | None) -> list[int]:
    nc = await nats.connect(pod.client_url, allow_reconnect=False, tls=tls)
    try:
        sub = await nc.jetstream(timeout=10).pull_subscribe_bind(CONSUMER, stream=STREAM)
        got: list[int] = []
        while len(got) < count:
            for msg in await sub.fetch(min(100, count - len(got)), timeout=10):
                got.append(number_of(msg.data))
                await msg.ack()
        await nc.flush()
        return sorted(got)
    finally:
        await nc.close()


async def _wait_copy(pods: Pods, pod: Pod, last_seq: int, timeout: float) -> None:
    """Until the pod's own copy of the stream (its /jsz) reaches `last_seq`."""
    loop = asyncio.get_running_loop()

    def local_last() -> int:
        try:
            jsz = pods.get_json(pod, "/jsz?streams=true")
        except OSError:
            return -1
        for account in jsz.get("account_details", []):
            for detail in account.get("stream_detail", []):
                if detail["name"] == STREAM:
                    return detail["state"]["last_seq"]
        return -1

    deadline = loop.time() + timeout
    while (seen := await loop.run_in_executor(None, local_last)) < last_seq:
        if loop.time() > deadline:
            raise AssertionError(f"{pod.name}'s copy at seq {seen}, not {last_seq}, after "
                                 f"{timeout:.0f}s")
        await asyncio.sleep(0.1)


async def _until_async(get: Callable[[], Awaitable[T]], done: Callable[[T], bool],
                       timeout: float, what: str) -> T:
    """Poll `get()` until `done(value)`; fail naming `what` after `timeout` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not done(value := await get()):
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what} "
                                 f"(last: {value!r})")
        await asyncio.sleep(0.1)
    return value


async def _until(check: Callable[[], bool], timeout: float, what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.05)


def _collapse(items: list[T]) -> list[T]:
    """Runs of equal items as one: [200, 200, 503, 0, 0] -> [200, 503, 0]."""
    out: list[T] = []
    for item in items:
        if not out or out[-1] != item:
            out.append(item)
    return out
