"""The `broker` command line and config files, as an operator or a harness uses them."""

from __future__ import annotations

import subprocess
import sys

import nats
import pytest

from tests.procs import ROOT


def run_broker(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "broker", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=20, env=env)


def test_version_and_help():
    version = run_broker("-v")
    assert version.returncode == 0
    assert version.stdout.startswith("nats-server: v2.")
    help_text = run_broker("--help")
    assert help_text.returncode == 0 and "--store_dir" in help_text.stdout


def test_unknown_flag_is_refused():
    result = run_broker("--no-such-flag")
    assert result.returncode == 2
    assert "flag provided but not defined: -no-such-flag" in result.stderr


def test_check_config_accepts_the_examples():
    for name in ("single.conf", "single.yaml"):
        result = run_broker("-t", "-c", f"config/examples/{name}")
        assert result.returncode == 0, result.stderr
        assert "is valid" in result.stdout


def test_bad_config_is_refused_naming_file_line_and_key(tmp_path):
    conf = tmp_path / "bad.conf"
    conf.write_text("port: 4222\n\nmax_payload: 1MB\nbogus_key: 1\n")
    result = run_broker("-c", str(conf))
    assert result.returncode == 1
    assert f"{conf}:4:" in result.stderr and "bogus_key" in result.stderr


async def test_config_with_include_and_env_variable(start_broker, tmp_path, monkeypatch):
    (tmp_path / "limits.conf").write_text("max_payload: 64KB\nmax_connections: 5\n")
    monkeypatch.setenv("POD_NAME", "nats-7")
    server = start_broker(config=f"server_name: $POD_NAME\ninclude {tmp_path / 'limits.conf'}\n")
    _, varz = server.get("/varz")
    assert varz["server_name"] == "nats-7"
    assert varz["max_payload"] == 65536
    assert varz["max_connections"] == 5
    nc = await nats.connect(server.url, allow_reconnect=False)
    assert nc.max_payload == 65536
    await nc.close()


async def test_flags_override_the_config_file(start_broker):
    server = start_broker("-n", "from-flag", config="server_name: from-file\n")
    assert server.get("/varz")[1]["server_name"] == "from-flag"


async def test_harness_style_flags_are_accepted(start_broker, tmp_path):
    server = start_broker("-sd=" + str(tmp_path / "store"), "-js", "-DV", "-l",
                          str(tmp_path / "broker.log"), "--cluster_name", "c1", "-n", "a")
    nc = await nats.connect(server.url, allow_reconnect=False)
    await nc.flush()
    await nc.close()
    assert (tmp_path / "broker.log").read_text().count("[INF]") >= 1
    assert "[TRC]" in (tmp_path / "broker.log").read_text()


async def test_max_payload_violation_closes_the_publisher(start_broker):
    server = start_broker(config="max_payload: 1KB\n")
    nc = await nats.connect(server.url, allow_reconnect=False)
    assert nc.max_payload == 1024
    with pytest.raises(nats.errors.MaxPayloadError):
        await nc.publish("big", b"x" * 1025)  # nats-py refuses client-side too
    await nc.close()
