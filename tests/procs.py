"""Real server processes for tests and benchmarks: our broker, or nats-server as the oracle.

A server is started with nats-server's own harness flags (`-a 127.0.0.1 -p -1 -m -1
--ports_file_dir DIR`), and is ready when it has written `<exe>_<pid>.ports`, exactly how test
harnesses drive nats-server.
"""

from __future__ import annotations

import glob
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def command(impl: str) -> list[str]:
    """How to start an implementation; BROKER_TEST_CMD overrides the broker's command line."""
    if impl == "nats-server":
        return ["nats-server"]
    if os.sep in impl:  # an executable by path, such as the `broker` of an installed wheel
        return [impl]
    override = os.environ.get("BROKER_TEST_CMD")
    if override:
        return shlex.split(override)
    return [sys.executable, "-m", "broker"]


@dataclass
class ServerProcess:
    """One server process. `restart()` starts it again with the same arguments (and ports)."""

    impl: str
    args: list[str]
    workdir: str
    process: subprocess.Popen | None = None
    host: str = "127.0.0.1"
    port: int = 0
    monitor_port: int = 0
    log_path: str = ""
    extra: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)  # added to the inherited environment
    cwd: str = ROOT

    @property
    def url(self) -> str:
        return f"nats://{self.host}:{self.port}"

    @property
    def monitor_url(self) -> str:
        return f"http://{self.host}:{self.monitor_port}"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self, timeout: float = 15.0) -> ServerProcess:
        ports_dir = tempfile.mkdtemp(prefix="ports-", dir=self.workdir)
        argv = command(self.impl) + self.args + ["--ports_file_dir", ports_dir]
        self.log_path = os.path.join(self.workdir, f"server-{time.monotonic_ns()}.log")
        log = open(self.log_path, "wb")  # noqa: SIM115 - the child owns it until it exits
        env = {**os.environ, **self.env} if self.env else None
        self.process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd=self.cwd,
                                        env=env)
        log.close()
        ports = _wait_for_ports(ports_dir, self.process, timeout, self.log_path)
        host, port = ports["nats"][0].split("://", 1)[1].rsplit(":", 1)
        self.host, self.port = host, int(port)
        if ports.get("monitoring"):
            self.monitor_port = int(ports["monitoring"][0].rsplit(":", 1)[1])
        return self

    def restart_args_fixed(self) -> None:
        """Pin the ports chosen at first start, so a restart listens where clients reconnect."""
        self.args = _replace_flag(self.args, "-p", str(self.port))
        if self.monitor_port:
            self.args = _replace_flag(self.args, "-m", str(self.monitor_port))

    def signal(self, sig: int) -> None:
        assert self.process is not None
        self.process.send_signal(sig)

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM and wait; kill if it does not exit. Returns the exit code."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def log(self) -> str:
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def get(self, path: str) -> tuple[int, dict | str]:
        """GET a monitoring path; (status, parsed JSON or text)."""
        try:
            with urllib.request.urlopen(self.monitor_url + path, timeout=5) as resp:
                status, body = resp.status, resp.read()
                kind = resp.headers.get("Content-Type", "")
        except urllib.error.HTTPError as err:
            status, body, kind = err.code, err.read(), err.headers.get("Content-Type", "")
        if "json" in kind:
            return status, json.loads(body)
        return status, body.decode()


def start_server(impl: str = "broker", extra: list[str] | None = None, workdir: str = "",
                 monitor: bool = True, timeout: float = 15.0,
                 env: dict[str, str] | None = None) -> ServerProcess:
    workdir = workdir or tempfile.mkdtemp(prefix="srv-")
    args = ["-a", "127.0.0.1", "-p", "-1"] + (["-m", "-1"] if monitor else []) + (extra or [])
    return ServerProcess(impl, args, workdir, env=env or {}).start(timeout)


def _wait_for_ports(ports_dir: str, proc: subprocess.Popen, timeout: float,
                    log_path: str) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for path in glob.glob(os.path.join(ports_dir, f"*_{proc.pid}.ports")):
            with open(path) as f:
                text = f.read()
            if text:
                return json.loads(text)
        if proc.poll() is not None:
            break
        time.sleep(0.01)
    proc.kill()
    proc.wait()
    with open(log_path, errors="replace") as f:
        output = f.read()
    raise RuntimeError(f"server did not start (exit {proc.returncode}):\n{output}")


def _replace_flag(args: list[str], flag: str, value: str) -> list[str]:
    out = list(args)
    if flag in out:
        out[out.index(flag) + 1] = value
    return out


def cleanup(server: ServerProcess) -> None:
    server.kill()
    shutil.rmtree(server.workdir, ignore_errors=True)
