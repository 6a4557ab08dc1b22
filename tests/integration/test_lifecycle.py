"""Process lifecycle of a real broker: restart and reconnect, signals, pid file, lame duck."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys

import nats
import pytest

from tests.procs import ROOT


async def test_client_reconnects_after_a_server_restart_and_keeps_its_subscriptions(start_broker):
    server = start_broker()
    server.restart_args_fixed()
    reconnected = asyncio.Event()

    async def on_reconnect() -> None:
        reconnected.set()

    nc = await nats.connect(server.url, reconnected_cb=on_reconnect, reconnect_time_wait=0.1,
                            max_reconnect_attempts=100)
    sub = await nc.subscribe("after.restart")
    await nc.flush()
    assert server.stop() == 0
    server.start()
    await asyncio.wait_for(reconnected.wait(), 10)
    await nc.publish("after.restart", b"back")
    assert (await sub.next_msg(timeout=2)).data == b"back"
    await nc.close()


async def test_sigterm_flushes_and_exits_cleanly(start_broker):
    server = start_broker()
    closed = asyncio.Event()

    async def on_disconnect() -> None:
        closed.set()

    nc = await nats.connect(server.url, allow_reconnect=False, disconnected_cb=on_disconnect)
    await nc.flush()
    server.signal(signal.SIGTERM)
    assert server.process.wait(10) == 0
    await asyncio.wait_for(closed.wait(), 5)
    assert "Server Exiting" in server.log()
    await nc.close()


async def test_pid_file_holds_bare_digits_and_signal_command_uses_it(start_broker, tmp_path):
    pid_file = tmp_path / "broker.pid"
    server = start_broker("-P", str(pid_file))
    assert pid_file.read_text() == str(server.pid)
    result = subprocess.run([sys.executable, "-m", "broker", "--signal", f"quit={pid_file}"],
                            cwd=ROOT, capture_output=True, text=True, timeout=10)
    assert result.returncode == 0, result.stderr
    assert server.process.wait(10) == 0


async def test_lame_duck_mode_tells_clients_then_closes_them_and_exits(start_broker):
    # The shortest duration nats-server allows; closes are at most a second apart, so one client
    # is closed right after the grace period.
    server = start_broker(config="lame_duck_duration: 30s\nlame_duck_grace_period: 1s\n")
    told, dropped = asyncio.Event(), asyncio.Event()

    async def on_ldm() -> None:
        told.set()

    async def on_disconnect() -> None:
        dropped.set()

    nc = await nats.connect(server.url, allow_reconnect=False, lame_duck_mode_cb=on_ldm,
                            disconnected_cb=on_disconnect)
    await nc.flush()
    result = subprocess.run([sys.executable, "-m", "broker", "--signal", f"ldm={server.pid}"],
                            cwd=ROOT, capture_output=True, text=True, timeout=10)
    assert result.returncode == 0, result.stderr
    await asyncio.wait_for(told.wait(), 5)
    with pytest.raises(OSError):
        await asyncio.open_connection(server.host, server.port)  # no longer accepting
    await asyncio.wait_for(dropped.wait(), 10)
    assert server.process.wait(10) == 0
    assert "Entering lame duck mode" in server.log()
    await nc.close()


async def test_sighup_reloads_what_can_change(start_broker, tmp_path):
    conf = tmp_path / "reload.conf"
    conf.write_text('authorization { token: "first" }\n')
    server = start_broker("-c", str(conf))
    nc = await nats.connect(server.url, token="first", allow_reconnect=False)
    await nc.flush()
    conf.write_text('authorization { token: "second" }\n')
    server.signal(signal.SIGHUP)
    for _ in range(100):
        if "Reloaded server configuration" in server.log():
            break
        await asyncio.sleep(0.05)
    assert "Reloaded server configuration" in server.log()
    fresh = await nats.connect(server.url, token="second", allow_reconnect=False)
    await fresh.flush()
    await fresh.close()
    with pytest.raises(Exception):  # noqa: B017 - the old token is refused, any client error
        await nats.connect(server.url, token="first", allow_reconnect=False,
                           max_reconnect_attempts=0, connect_timeout=2)
    await nc.close()


async def test_reload_refuses_changes_that_need_a_restart(start_broker, tmp_path):
    conf = tmp_path / "reload.conf"
    conf.write_text("server_name: one\n")
    server = start_broker("-c", str(conf))
    conf.write_text("server_name: two\n")
    os.kill(server.pid, signal.SIGHUP)
    for _ in range(100):
        if "config reload not supported" in server.log():
            break
        await asyncio.sleep(0.05)
    assert "config reload not supported for server_name" in server.log()
    assert server.get("/varz")[1]["server_name"] == "one"
