"""A pod's identity comes from its environment (POD_NAME) and the routes the shared config lists.
When either is wrong the server says so, in the words an operator can act on, instead of
joining the cluster as something it is not."""

from __future__ import annotations

import os
import subprocess
import sys

import nats

from tests.clusters import Cluster, free_ports, pod_config, wait_for
from tests.procs import ROOT, cleanup, start_server

CONFIG = pod_config()


def test_missing_pod_name_names_file_line_and_variable(tmp_path):
    path = tmp_path / "nats.conf"
    path.write_text(CONFIG.replace("{routes}", "    nats-route://127.0.0.1:1"))
    env = {k: v for k, v in os.environ.items() if k != "POD_NAME"}
    env.update(STORE_DIR=str(tmp_path / "data"), CLUSTER_PORT="-1")
    done = subprocess.run([sys.executable, "-m", "broker", "-c", str(path)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 1
    assert f"{path}:2:14: variable reference for 'POD_NAME' can not be found" in done.stderr
    assert "Traceback" not in done.stdout + done.stderr


async def test_a_server_missing_from_the_routes_stays_out_and_says_why(tmp_path):
    cluster = Cluster(str(tmp_path / "cluster"), config=CONFIG).start()
    stray = None
    try:
        cluster.wait_ready()
        # A fourth pod (the StatefulSet scaled to 4 while the routes still name 3).
        workdir = tmp_path / "S3"
        workdir.mkdir()
        stray = start_server("broker", ["-c", cluster.config_path()], workdir=str(workdir),
                             env={"POD_NAME": "S3", "CLUSTER_PORT": str(free_ports(1)[0]),
                                  "STORE_DIR": str(workdir / "data")})
        wait_for(lambda: "is not one of its configured routes" in stray.log(), 20,
                 "the stray server to say it is not in the routes")
        status, body = stray.get("/healthz")
        assert status == 503
        assert "this server (S3) is not one of its configured routes" in body["error"]
        assert "Check POD_NAME" in body["error"]

        # The cluster the routes name is untouched: three voters, and it still works.
        status, jsz = cluster.servers[0].get("/jsz")
        assert status == 200
        assert jsz["meta_cluster"]["cluster_size"] == 3
        nc = await nats.connect(cluster.url(0))
        try:
            js = nc.jetstream()
            await js.add_stream(name="ORDERS", subjects=["orders.>"], num_replicas=3)
            assert (await js.publish("orders.new", b"1")).seq == 1
        finally:
            await nc.close()
    finally:
        if stray is not None:
            cleanup(stray)
        cluster.stop()
