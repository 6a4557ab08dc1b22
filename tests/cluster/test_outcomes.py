"""Truthful publish outcomes under faults of the stream leader (tests.chaos.outcomes, short):
writers without retries record each publish as ok / fail / indeterminate while the leader is
paused, killed, partitioned and asked to step down; then every message is retried with its
Nats-Msg-Id. Nothing acknowledged is lost, no publish that got an error is stored, none is
answered twice or stored twice, and every retry of a stored message names its sequence."""

from __future__ import annotations

import random

import pytest

from tests.chaos.outcomes import LEADER_FAULTS, run
from tests.clusters import Cluster

pytestmark = pytest.mark.timeout(600)


async def test_publish_outcomes_are_true_under_leader_faults(tmp_path):
    cluster = Cluster(str(tmp_path), proxied=True).start()
    try:
        cluster.wait_ready(60)
        verdict = await run(cluster, list(LEADER_FAULTS), writers=6, round_seconds=3.0,
                            rng=random.Random(), say=print)
    finally:
        cluster.stop()
    print("\n".join(verdict.lines()))
    assert verdict.clean, verdict.lines()
    assert verdict.ok > 1000, "the writers hardly wrote"
    assert len(verdict.retried) == verdict.publishes
