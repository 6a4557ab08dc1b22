"""What users install: an sdist and a wheel built from the checkout, installed outside it.

Every other test imports the editable tree, which hides a package the build leaves out (it once
left out `broker.jetstream`, and `pip install .` gave a broker whose JetStream could not start).
Here the sdist and the wheel are built from the checkout as `python -m build` would
(`tests.dists`), the wheel goes into a fresh venv in a temporary directory, and the installed
`broker` runs a JetStream flow for nats-py: stream, dedupe, pull consumer, KV and object store.
"""

from __future__ import annotations

import asyncio
import os
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import nats
import pytest
from nats.js.api import StreamConfig

from broker.version import PACKAGE_VERSION, SERVER_VERSION
from tests.dists import build, checkout_files, clean_env, run
from tests.dists import install as install_wheel
from tests.procs import ROOT, ServerProcess

pytestmark = pytest.mark.timeout(600)

LAYERS = ("broker", "common", "config", "raft", "storage")
DIST = "pynats_broker"


@dataclass
class Install:
    sdist: Path
    wheel: Path
    venv: Path
    site: Path

    @property
    def broker(self) -> str:
        return str(self.venv / "bin" / "broker")

    @property
    def python(self) -> str:
        return str(self.venv / "bin" / "python")


def _checkout_files() -> list[str]:
    files = checkout_files()
    if files is None:
        pytest.skip("the checkout is not a git work tree; cannot tell which files it holds")
    return files


def _layer_files(files: list[str]) -> set[str]:
    """Python modules of the five packages and the example configs: what a wheel must carry."""
    wanted = {f for f in files if f.split("/")[0] in LAYERS and f.endswith(".py")}
    wanted |= {f for f in files if f.startswith("config/examples/")}
    return wanted


@pytest.fixture(scope="module")
def install(tmp_path_factory) -> Install:
    base = tmp_path_factory.mktemp("packaging")
    sdist, wheel = build(base, _checkout_files())
    venv = base / "venv"
    site = install_wheel(wheel, venv)
    return Install(sdist=sdist, wheel=wheel, venv=venv, site=site)


def test_sdist_and_wheel_hold_the_whole_tree(install: Install) -> None:
    wanted = _layer_files(_checkout_files())
    assert "broker/jetstream/cluster/streamreplica.py" in wanted, \
        "the walk of the checkout found no subpackages"
    with tarfile.open(install.sdist) as tar:
        root = tar.getnames()[0].split("/")[0]
        in_sdist = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
    assert root.startswith(f"{DIST}-{PACKAGE_VERSION}")
    assert not wanted - in_sdist, f"missing from the sdist: {sorted(wanted - in_sdist)}"
    in_wheel = set(zipfile.ZipFile(install.wheel).namelist())
    assert not wanted - in_wheel, f"missing from the wheel: {sorted(wanted - in_wheel)}"
    assert not any(n.startswith("tests/") for n in in_wheel), "tests leaked into the wheel"


def test_installed_package_is_outside_the_checkout(install: Install) -> None:
    assert not str(install.site).startswith(ROOT), install.site


def test_every_installed_module_imports(install: Install) -> None:
    """Importing each module finds what the wheel left out, or a dependency it does not declare.

    Two are left alone: `broker.__main__` starts a server, and `broker.pytest_plugin` is loaded
    only by pytest, which brings its own dependency.
    """
    script = (
        "import importlib, pkgutil\n"
        "skip = {'broker.__main__', 'broker.pytest_plugin'}\n"
        f"for top in {LAYERS!r}:\n"
        "    pkg = importlib.import_module(top)\n"
        "    for info in pkgutil.walk_packages(pkg.__path__, top + '.'):\n"
        "        if info.name not in skip:\n"
        "            importlib.import_module(info.name)\n"
        "print('ok')\n")
    assert run([install.python, "-c", script], cwd=install.venv, env=clean_env()) == "ok\n"


def test_version_names_ours_and_the_nats_server_we_speak(install: Install) -> None:
    out = run([install.broker, "--version"], cwd=install.venv, env=clean_env())
    assert out.startswith(f"nats-server: v{SERVER_VERSION} ")
    assert f"pynats-broker {PACKAGE_VERSION}" in out


@pytest.mark.parametrize("example", ["single.conf", "single.yaml", "cluster.conf",
                                     "cluster.yaml", "secure-cluster.conf"])
def test_installed_example_configs_check(install: Install, example: str) -> None:
    env = {**clean_env(), "POD_NAME": "nats-0", "APP_PASSWORD": "a", "ADMIN_PASSWORD": "b"}
    path = install.site / "config" / "examples" / example
    out = run([install.broker, "-t", "-c", str(path)], cwd=install.venv, env=env)
    assert "is valid" in out


def test_installed_broker_runs_jetstream(install: Install, tmp_path) -> None:
    server = ServerProcess(install.broker, ["-a", "127.0.0.1", "-p", "-1", "-m", "-1", "-js",
                                            "-sd", str(tmp_path / "store")],
                           str(tmp_path), env=clean_env(), cwd=str(install.venv)).start()
    try:
        asyncio.run(_jetstream_flow(server.url))
        status, body = server.get("/healthz")
        assert status == 200, body
    finally:
        server.stop()
    assert server.process is not None and server.process.returncode == 0, server.log()


async def _jetstream_flow(url: str) -> None:
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        await js.add_stream(StreamConfig(name="ORDERS", subjects=["orders.>"]))
        first = await js.publish("orders.created", b"order 47", headers={"Nats-Msg-Id": "47"})
        again = await js.publish("orders.created", b"order 47", headers={"Nats-Msg-Id": "47"})
        assert (first.seq, first.duplicate) == (1, None)
        assert (again.seq, again.duplicate) == (1, True)
        await js.publish("orders.shipped", b"order 47 shipped")

        sub = await js.pull_subscribe("orders.>", durable="billing")
        msgs = await sub.fetch(2, timeout=5)
        assert [m.data for m in msgs] == [b"order 47", b"order 47 shipped"]
        for msg in msgs:
            await msg.ack_sync()
        info = await js.consumer_info("ORDERS", "billing")
        assert (info.num_pending, info.num_ack_pending, info.ack_floor.stream_seq) == (0, 0, 2)

        kv = await js.create_key_value(bucket="settings")
        await kv.put("color", b"blue")
        await kv.put("color", b"green")
        entry = await kv.get("color")
        assert (entry.value, entry.revision) == (b"green", 2)

        store = await js.create_object_store(bucket="files")
        blob = os.urandom(300_000)  # several chunks
        await store.put("blob.bin", blob)
        assert (await store.get("blob.bin")).data == blob
    finally:
        await nc.close()
