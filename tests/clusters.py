"""Clusters of real broker processes on loopback, for cluster tests, chaos runs and benchmarks.

Every server gets a fixed cluster port chosen up front, so each can list all routes (itself
included, as a StatefulSet config does) and a restarted server comes back where its peers dial.
"""

from __future__ import annotations

import os
import shutil
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from tests.netproxy import RouteProxies
from tests.procs import ServerProcess, start_server


def free_ports(n: int) -> list[int]:
    """Ports nothing listens on right now (the kernel's picks, released at once)."""
    socks = [socket.socket() for _ in range(n)]
    try:
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in socks]
    finally:
        for sock in socks:
            sock.close()


def wait_for(check: Callable[[], object], timeout: float, what: str,
             interval: float = 0.05) -> object:
    """Poll `check` until it returns something true; fail naming `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def pod_config(top: str = "", jetstream: str = "") -> str:
    """A config file all servers of a Cluster share, as a StatefulSet's pods do (`config=`):
    named by $POD_NAME, each store at $STORE_DIR, listing every route. `top` adds lines at the
    top level, `jetstream` inside the jetstream block."""
    return f"""
server_name: $POD_NAME
{top}
jetstream {{ store_dir: $STORE_DIR, {jetstream} }}
cluster {{
  name: c1
  host: 127.0.0.1
  port: $CLUSTER_PORT
  routes: [
{{routes}}
  ]
}}
"""


@dataclass
class Cluster:
    """N brokers named S0..S{n-1} in cluster `name`; `servers[i]` is the process of Si."""

    workdir: str
    size: int = 3
    impl: str = "broker"  # or "nats-server", for comparisons
    name: str = "c1"
    jetstream: bool = True
    seed_only: bool = False  # every server knows only S0's route (implicit discovery)
    extra: list[str] = field(default_factory=list)
    journals: bool = False  # each server journals its fsyncs (power-loss simulation)
    proxied: bool = False  # routes go through `proxies`, which can partition a server
    env: dict[str, str] = field(default_factory=dict)
    # A config file all servers share, as the pods of a StatefulSet do: `{routes}` in it becomes
    # the route list; what differs per server comes from the environment (POD_NAME, CLUSTER_PORT,
    # STORE_DIR), as the pod's own name does there.
    config: str = ""
    servers: list[ServerProcess] = field(default_factory=list)
    cluster_ports: list[int] = field(default_factory=list)
    proxy_ports: list[int] = field(default_factory=list)
    proxies: RouteProxies | None = None

    def route_url(self, i: int) -> str:
        port = self.proxy_ports[i] if self.proxied else self.cluster_ports[i]
        return f"nats-route://127.0.0.1:{port}"

    def args(self, i: int) -> list[str]:
        if self.config:
            return ["-c", self.config_path(), *self.extra]
        routes = [self.route_url(0)] if self.seed_only else \
            [self.route_url(j) for j in range(self.size)]
        args = ["-n", f"S{i}", "--cluster_name", self.name,
                "--cluster", f"nats://127.0.0.1:{self.cluster_ports[i]}",
                "--routes", ",".join(routes)]
        if self.proxied:
            args += ["--cluster_advertise", f"127.0.0.1:{self.proxy_ports[i]}"]
        if self.jetstream:
            args += ["-js", "-sd", self.store_dir(i)]
        return args + self.extra

    def store_dir(self, i: int) -> str:
        return os.path.join(self.workdir, f"S{i}", "data")

    def journal(self, i: int) -> str:
        return os.path.join(self.workdir, f"S{i}", "journal")

    def config_path(self) -> str:
        return os.path.join(self.workdir, "nats.conf")

    def server_env(self, i: int) -> dict[str, str]:
        env = dict(self.env)
        if self.config:
            env.update(POD_NAME=f"S{i}", CLUSTER_PORT=str(self.cluster_ports[i]),
                       STORE_DIR=self.store_dir(i))
        if self.journals:
            env["BROKER_DURABILITY_JOURNAL"] = self.journal(i)
        return env

    def start(self) -> Cluster:
        self.cluster_ports = free_ports(self.size)
        if self.proxied:
            self.proxies = RouteProxies()
            self.proxy_ports = [self.proxies.add(f"S{i}", port)
                                for i, port in enumerate(self.cluster_ports)]
        os.makedirs(self.workdir, exist_ok=True)
        if self.config:
            routes = "\n".join(f"    {self.route_url(i)}" for i in range(self.size))
            with open(self.config_path(), "w") as f:
                f.write(self.config.replace("{routes}", routes))
        for i in range(self.size):
            workdir = os.path.join(self.workdir, f"S{i}")
            os.makedirs(workdir, exist_ok=True)
            server = start_server(self.impl, self.args(i), workdir=workdir,
                                  env=self.server_env(i))
            server.restart_args_fixed()
            self.servers.append(server)
        self.wait_for_mesh()
        return self

    def wait_for_mesh(self, timeout: float = 15.0) -> None:
        for i in self.up():
            wait_for(lambda i=i: self.num_routes(i) == len(self.up()) - 1, timeout,
                     f"S{i} to route to every running peer")

    def num_routes(self, i: int) -> int:
        status, body = self.servers[i].get("/routez")
        return body["num_routes"] if status == 200 and isinstance(body, dict) else -1

    def up(self) -> list[int]:
        return [i for i, s in enumerate(self.servers)
                if s.process is not None and s.process.poll() is None]

    def url(self, i: int) -> str:
        return self.servers[i].url

    def urls(self) -> list[str]:
        return [self.url(i) for i in self.up()]

    def kill(self, i: int) -> None:
        self.servers[i].kill()

    def restart(self, i: int) -> ServerProcess:
        server = self.servers[i]
        server.kill()
        return server.start()

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Every running server reports healthy (JetStream current with the meta leader)."""
        for i in self.up():
            wait_for(lambda i=i: self.servers[i].get("/healthz")[0] == 200, timeout,
                     f"S{i} to be healthy")

    def index(self, name: str) -> int:
        return int(name[1:])

    def logs(self) -> str:
        return "\n".join(f"--- S{i} ---\n{s.log()[-20000:]}" for i, s in enumerate(self.servers))

    def stop(self) -> None:
        for server in self.servers:
            server.kill()
        if self.proxies is not None:
            self.proxies.close()
            self.proxies = None
        shutil.rmtree(self.workdir, ignore_errors=True)
