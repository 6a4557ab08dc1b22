"""The Raft groups this server is a member of, carried over the route connections.

Each group (the meta group, each R3 stream, each R3 consumer) is one `raft.RaftDriver` with its
log in `<store_dir>/jetstream/$SYS/_js_/<group>/`. Frames travel as `RAFT <group> <size>` on the
route to the peer; a frame for a group this server does not (yet) run is dropped and counted:
the leader sends again.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import Callable
from typing import Protocol

from broker.logger import logger
from common.subjects import subject_text
from raft.driver import Application, DriverStopped, RaftDriver
from raft.log import RaftLog
from raft.options import RaftConfig

# A Raft frame from a peer: (peer server name, group, frame).
FrameHandler = Callable[[str, bytes, bytes], None]


class RaftTransport(Protocol):
    """What the Raft groups need of the route connections (`broker.route.RouteManager`)."""

    raft_handler: FrameHandler | None

    def send_raft(self, peer_name: str, group: bytes, frame: bytes) -> bool:
        """Send a frame to a peer; False when no route to it is up (Raft sends again)."""
        ...

# A 50 ms tick: heartbeats every 200 ms, elections after 1-2 s of silence, so a dead leader is
# replaced well within the 3 s a publisher retrying its PubAck can wait.
TICK = 0.05
CONFIG = RaftConfig(heartbeat_ticks=4, election_ticks_min=20, election_ticks_max=40)


class GroupHost(Protocol):
    """What a replicated stream or consumer needs of the cluster to run its Raft group
    (`jetstream_cluster.JetStreamCluster`; each replica's host Protocol adds its own part)."""

    @property
    def groups(self) -> RaftGroups: ...

    def track(self, task: asyncio.Task[None]) -> None:
        """Keep a background task of the group alive, and log it if it fails."""
        ...

    def group_info(self, driver: RaftDriver | None, peers: list[str], leader_since: int
                   ) -> dict[str, object]:
        """The `cluster` block of an info response for one group."""
        ...


class RaftGroups:
    def __init__(self, server_name: str, routes: RaftTransport, base_dir: str) -> None:
        self.server_name = server_name
        self.routes = routes
        self.base_dir = base_dir
        self.drivers: dict[str, RaftDriver] = {}
        self.unknown_frames = 0
        routes.raft_handler = self._receive

    def directory(self, group: str) -> str:
        return os.path.join(self.base_dir, group)

    def has_state(self, group: str) -> bool:
        return os.path.isdir(self.directory(group))

    def open_log(self, group: str) -> RaftLog:
        """Recover (or create) the group's log, to look at it before the group starts."""
        return RaftLog.open(self.directory(group))

    async def open(self, group: str, peers: list[str] | None, app: Application,
                   on_change: Callable[[], None] | None = None,
                   raft_log: RaftLog | None = None) -> RaftDriver:
        """Start this server's member of `group` (recovering its log if it has one)."""
        if raft_log is None:
            raft_log = self.open_log(group)
        driver = RaftDriver(self.server_name, peers, raft_log, app, self._sender(group),
                            group=group, config=CONFIG, tick_interval=TICK)
        driver.on_change = on_change
        self.drivers[group] = driver
        await driver.start()
        if peers and peers[0] == self.server_name and driver.status().last_index == 0:
            driver.campaign()  # a new group: its preferred leader need not wait for a timeout
        if not raft_log.vouch.can_vouch:
            logger.warning("JetStream raft group %s: log damaged (%s); repairing from peers "
                           "before voting again", group, raft_log.vouch.reason)
        return driver

    async def close(self, group: str, destroy: bool = False) -> None:
        driver = self.drivers.pop(group, None)
        if driver is not None:
            await driver.stop()
            driver.log.close()
        if destroy:
            shutil.rmtree(self.directory(group), ignore_errors=True)

    async def hand_over(self, timeout: float) -> int:
        """Hand leadership of every group this server leads to a current peer (lame duck), and
        wait until none is led here any more or `timeout` passes. Returns how many it handed."""
        leading = [d for d in self.drivers.values() if d.is_leader]
        handed = []
        for driver in leading:
            target = best_successor(driver, sorted(driver.status().voters), self.server_name)
            if target is not None and driver.transfer_leadership(target):
                handed.append(driver)
        if handed:
            waits = [d.wait_for(_not_leader(d)) for d in handed]
            try:
                await asyncio.wait_for(asyncio.gather(*waits), timeout)
            except (TimeoutError, DriverStopped):
                still = [d.group for d in handed if d.is_leader]
                logger.warning("JetStream lame duck: still leading %s after %.1fs",
                               ", ".join(still) or "nothing", timeout)
        return len(handed)

    async def close_all(self) -> None:
        for group in list(self.drivers):
            await self.close(group)

    def _sender(self, group: str) -> Callable[[str, bytes], None]:
        name = group.encode()

        def send(peer: str, frame: bytes) -> None:
            self.routes.send_raft(peer, name, frame)
        return send

    def _receive(self, peer: str, group: bytes, frame: bytes) -> None:
        driver = self.drivers.get(subject_text(group))
        if driver is None:
            self.unknown_frames += 1
            return
        driver.receive(frame)


def best_successor(driver: RaftDriver, peers: list[str], me: str) -> str | None:
    """The peer to hand leadership to: one that is current, else any other."""
    status = driver.status()
    others = [p for p in peers if p != me]
    current = [p for p in others if p in status.peers and status.peers[p].active
               and status.peers[p].lag == 0]
    choices = current or others
    return choices[0] if choices else None


def _not_leader(driver: RaftDriver) -> Callable[[], bool]:
    return lambda: not driver.is_leader
