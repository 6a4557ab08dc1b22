"""The StatefulSet of deploy/ run as three pods on this machine, without Kubernetes.

What a pod is here, taken from the rendered manifests (`tests.deploy.render`):
- its own network namespace on a bridge, with an address that exists only inside it, and
  `/etc/netns/<ns>/hosts` giving every pod's DNS name on the headless Service (what cluster DNS
  would answer);
- its own mount view (`ip netns exec` makes one): each volume of the pod template bound at its
  mountPath (the PVC, the ConfigMap with the config text exactly as kustomize generated it, the
  emptyDirs), then the root filesystem remounted read-only when the container asks for it;
- the container's command, run as the pod's user and group (runAsUser / fsGroup), with the
  environment the manifest declares (POD_NAME from the downward API) and nothing else;
- probes polled on the pod's address at the manifest's paths, and a stop that is the kubelet's:
  the preStop command run inside the pod, then SIGTERM, then SIGKILL after the grace period.

Root only (network namespaces, bind mounts). Every name this creates carries the run's own
prefix, and only those are ever deleted.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shlex
import shutil
import signal
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests import dists
from tests.certs import authority
from tests.deploy.render import find, render

# The pods run the wheel in a venv of the system's Python, as the image does (deploy/Dockerfile):
# the pod's user must be able to run it, which a Python under /root would not allow.
SYSTEM_PYTHON = "/usr/bin/python3"
# Where the pods' volumes and image go: not under /tmp, which the pod covers with an emptyDir.
WORK_PARENT = "/var/tmp"


class PodsUnavailable(RuntimeError):
    """This machine cannot run the pods (not root, or network namespaces not permitted)."""


@dataclass(frozen=True)
class Probe:
    path: str
    port: int
    period: float
    failure_threshold: int
    timeout: float
    scheme: str = "http"  # "https": the kubelet asks over TLS and checks no certificate


@dataclass
class PodTemplate:
    """What the rendered StatefulSet and ConfigMap say about every pod."""

    name: str  # the StatefulSet's name: pods are <name>-0, <name>-1, ...
    namespace: str
    service: str  # the headless Service: pod DNS names are <pod>.<service>.<namespace>...
    replicas: int
    command: list[str]
    env: dict[str, str]  # literal values
    pod_name_env: list[str]  # variables set from metadata.name
    ports: dict[str, int]
    mounts: list[tuple[str, str]]  # (mountPath, volume name)
    read_only_mounts: set[str]
    config_files: dict[str, dict[str, str]]  # configMap volume -> {file name: text}
    secret_volumes: dict[str, tuple[str, int]]  # secret volume -> (secretName, defaultMode)
    read_only_root: bool
    run_as: tuple[int, int] | None  # (uid, gid)
    fs_group: int | None
    pre_stop: list[str]
    grace: float
    startup: Probe
    readiness: Probe
    liveness: Probe

    def dns_name(self, ordinal: int) -> str:
        return f"{self.name}-{ordinal}.{self.service}.{self.namespace}.svc.cluster.local"


def load_template(objects: list[dict[str, Any]] | None = None) -> PodTemplate:
    objects = render() if objects is None else objects
    sts = find(objects, "StatefulSet")
    spec = sts["spec"]
    pod = spec["template"]["spec"]
    (container,) = pod["containers"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    env: dict[str, str] = {}
    pod_name_env: list[str] = []
    for var in container.get("env", []):
        ref = var.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath")
        if ref == "metadata.name":
            pod_name_env.append(var["name"])
        elif "value" in var:
            env[var["name"]] = var["value"]
        else:
            raise ValueError(f"env {var['name']}: only values and metadata.name are rehearsed")
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    config_files: dict[str, dict[str, str]] = {}
    secret_volumes: dict[str, tuple[str, int]] = {}
    for name, volume in volumes.items():
        if "configMap" in volume:
            config_map = find(objects, "ConfigMap", volume["configMap"]["name"])
            config_files[name] = dict(config_map["data"])
        elif "secret" in volume:
            secret = volume["secret"]
            secret_volumes[name] = (secret["secretName"], int(secret.get("defaultMode", 0o644)))
    mounts = [(m["mountPath"], m["name"]) for m in container["volumeMounts"]]
    security = container.get("securityContext", {})
    pod_security = pod.get("securityContext", {})
    uid = security.get("runAsUser", pod_security.get("runAsUser"))
    gid = security.get("runAsGroup", pod_security.get("runAsGroup"))
    return PodTemplate(
        name=sts["metadata"]["name"],
        namespace=sts["metadata"].get("namespace", "default"),
        service=spec["serviceName"],
        replicas=spec["replicas"],
        command=list(container["command"]) + list(container.get("args", [])),
        env=env,
        pod_name_env=pod_name_env,
        ports=ports,
        mounts=mounts,
        read_only_mounts={m["mountPath"] for m in container["volumeMounts"]
                          if m.get("readOnly")},
        config_files=config_files,
        secret_volumes=secret_volumes,
        read_only_root=bool(security.get("readOnlyRootFilesystem")),
        run_as=(uid, gid if gid is not None else uid) if uid is not None else None,
        fs_group=pod_security.get("fsGroup"),
        pre_stop=list(container["lifecycle"]["preStop"]["exec"]["command"]),
        grace=float(pod.get("terminationGracePeriodSeconds", 30)),
        startup=_probe(container["startupProbe"], ports),
        readiness=_probe(container["readinessProbe"], ports),
        liveness=_probe(container["livenessProbe"], ports),
    )


def _probe(spec: dict[str, Any], ports: dict[str, int]) -> Probe:
    get = spec["httpGet"]
    port = get["port"]
    return Probe(path=get["path"], port=ports[port] if isinstance(port, str) else int(port),
                 period=float(spec.get("periodSeconds", 10)),
                 failure_threshold=int(spec.get("failureThreshold", 3)),
                 timeout=float(spec.get("timeoutSeconds", 1)),
                 scheme=str(get.get("scheme", "HTTP")).lower())


def check_permitted() -> None:
    """Raise PodsUnavailable unless this process may create network namespaces."""
    if os.geteuid() != 0:
        raise PodsUnavailable("needs root (network namespaces and bind mounts)")
    if shutil.which("ip") is None:
        raise PodsUnavailable("needs iproute2's `ip`")
    name = f"rhprobe{secrets.token_hex(3)}"
    done = subprocess.run(["ip", "netns", "add", name], capture_output=True, text=True)
    if done.returncode != 0:
        raise PodsUnavailable(f"`ip netns add` is not permitted here: {done.stderr.strip()}")
    subprocess.run(["ip", "netns", "del", name], capture_output=True)


def _ip(*args: str) -> None:
    done = subprocess.run(["ip", *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {done.stderr.strip()}")


@dataclass
class Pod:
    ordinal: int
    name: str
    netns: str
    address: str
    veth: str  # the host side: down = the pod's link is cut
    root: Path  # the pod's volumes live under here
    process: subprocess.Popen | None = None
    log_path: Path | None = None
    starts: int = 0
    scheme: str = "nats"  # "tls" when the pods serve clients over TLS

    @property
    def client_url(self) -> str:
        return f"{self.scheme}://{self.address}:4222"

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log(self) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return self.log_path.read_text(errors="replace")


@dataclass
class Pods:
    """The StatefulSet's pods on one bridge. Use as a context manager: torn down on exit."""

    template: PodTemplate
    workdir: Path
    broker_bin: Path | None = None  # where the image has `broker` on PATH (see `build_image`)
    say: Callable[[str], None] = print
    prefix: str = field(default_factory=lambda: f"rh{secrets.token_hex(2)}")
    pods: list[Pod] = field(default_factory=list)
    _subnet: str = ""
    _made_dirs: list[Path] = field(default_factory=list)
    # With a Secret volume (deploy/tls/): the CA clients trust, made for this run.
    client_tls: ssl.SSLContext | None = None
    _secrets: dict[str, dict[str, bytes]] = field(default_factory=dict)

    # Set-up and tear-down

    def build_image(self) -> None:
        """The wheel built from the checkout, installed in a venv of the system's Python: what
        the container image holds (its `broker` on PATH)."""
        files = dists.checkout_files()
        if files is None:
            raise PodsUnavailable("the checkout is not a git work tree")
        if not os.access(SYSTEM_PYTHON, os.X_OK):
            raise PodsUnavailable(f"needs {SYSTEM_PYTHON} (the image's Python)")
        base = self.workdir / "image"
        base.mkdir()
        _, wheel = dists.build(base, files)
        dists.install(wheel, base / "venv", python=SYSTEM_PYTHON)
        self.broker_bin = base / "venv" / "bin"
        self.say(f"image: {wheel.name} installed in a {SYSTEM_PYTHON} venv")

    def __enter__(self) -> Pods:
        check_permitted()
        for path, _ in self.template.mounts:
            if str(self.workdir).startswith(path.rstrip("/") + "/"):
                # Inside the pod that mount would hide the image and the volumes' sources.
                raise ValueError(f"the work directory {self.workdir} lies under the pod's "
                                 f"mountPath {path}; use one elsewhere (see WORK_PARENT)")
        os.chmod(self.workdir, 0o755)  # the pods' user reads the image's venv under it
        try:
            self._create_network()
            self._create_pods()
        except BaseException:
            self.teardown()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.teardown()

    def _create_network(self) -> None:
        self._subnet = _free_subnet()
        bridge = f"{self.prefix}br"
        _ip("link", "add", bridge, "type", "bridge")
        _ip("addr", "add", f"{self._subnet}.1/24", "dev", bridge)
        _ip("link", "set", bridge, "up")
        for i in range(self.template.replicas):
            name = f"{self.template.name}-{i}"
            netns = f"{self.prefix}-{name}"
            host, inner = f"{self.prefix}h{i}", f"{self.prefix}c{i}"
            address = f"{self._subnet}.{10 + i}"
            _ip("netns", "add", netns)
            _ip("link", "add", host, "type", "veth", "peer", "name", inner)
            _ip("link", "set", inner, "netns", netns)
            _ip("link", "set", host, "master", bridge, "up")
            _ip("-n", netns, "link", "set", inner, "name", "eth0")
            _ip("-n", netns, "addr", "add", f"{address}/24", "dev", "eth0")
            _ip("-n", netns, "link", "set", "eth0", "up")
            _ip("-n", netns, "link", "set", "lo", "up")
            self.pods.append(Pod(i, name, netns, address, host, self.workdir / name))
        hosts = "127.0.0.1 localhost\n" + "".join(
            f"{pod.address} {self.template.dns_name(pod.ordinal)} {pod.name}\n"
            for pod in self.pods)
        for pod in self.pods:
            etc = Path("/etc/netns") / pod.netns
            etc.mkdir(parents=True, exist_ok=True)
            (etc / "hosts").write_text(hosts)
            os.chmod(etc / "hosts", 0o644)

    def _make_secrets(self) -> None:
        """What a cert-manager Certificate would write into each Secret the pods mount: a CA
        made for this run and one certificate (server and client auth) naming every pod's DNS
        name and address, in the tls.crt / tls.key / ca.crt layout."""
        names = {secret for secret, _ in self.template.secret_volumes.values()}
        if not names:
            return
        ca = authority(str(self.workdir / "pki"), "rehearsal-ca")
        hosts = tuple(h for pod in self.pods
                      for h in (self.template.dns_name(pod.ordinal), pod.address))
        pair = ca.issue("nats", hosts=hosts, both=True)
        files = {"tls.crt": Path(pair.cert).read_bytes(), "tls.key": Path(pair.key).read_bytes(),
                 "ca.crt": Path(ca.ca_file).read_bytes()}
        self._secrets = {name: files for name in names}
        self.client_tls = ssl.create_default_context(cafile=ca.ca_file)
        for pod in self.pods:
            pod.scheme = "tls"

    def _create_pods(self) -> None:
        t = self.template
        self._make_secrets()
        for pod in self.pods:
            for path, volume in t.mounts:
                source = pod.root / volume
                source.mkdir(parents=True, exist_ok=True)
                for file_name, text in t.config_files.get(volume, {}).items():
                    (source / file_name).write_text(text)
                if volume in t.secret_volumes:
                    secret, mode = t.secret_volumes[volume]
                    for file_name, data in self._secrets[secret].items():
                        target = source / file_name
                        target.write_bytes(data)
                        # As the kubelet writes them: defaultMode, the pod's group.
                        os.chown(target, -1, t.fs_group if t.fs_group is not None else 0)
                        os.chmod(target, mode)
                    os.chmod(source, 0o755)
                    self._mountpoint(Path(path))
                    continue
                if t.fs_group is not None and volume not in t.config_files:
                    # What the kubelet does for fsGroup: the volume belongs to the pod's group.
                    os.chown(source, -1, t.fs_group)
                    os.chmod(source, 0o2775)
                self._mountpoint(Path(path))

    def _mountpoint(self, path: Path) -> None:
        """The mountPath must exist on the host for a bind mount; remember what we made."""
        missing = []
        for parent in [path, *path.parents]:
            if parent.exists():
                break
            missing.append(parent)
        for p in reversed(missing):
            p.mkdir()
            self._made_dirs.append(p)

    def teardown(self) -> None:
        for pod in self.pods:
            if pod.running():
                assert pod.process is not None
                pod.process.kill()
                pod.process.wait()
        for pod in self.pods:
            subprocess.run(["ip", "netns", "del", pod.netns], capture_output=True)
            shutil.rmtree(Path("/etc/netns") / pod.netns, ignore_errors=True)
        subprocess.run(["ip", "link", "del", f"{self.prefix}br"], capture_output=True)
        for made in reversed(self._made_dirs):
            with contextlib.suppress(OSError):  # only if still empty: another run may use it
                made.rmdir()
        self._made_dirs.clear()

    # Running the container

    def _in_pod(self, pod: Pod, argv: list[str], sources: dict[str, Path] | None = None,
                without_env: frozenset[str] = frozenset()) -> list[str]:
        """argv run as the container would run it: in the pod's network namespace, with its
        volumes mounted, root read-only, as its user, with only its declared environment.
        `sources` puts other folders behind some volumes; `without_env` leaves variables out."""
        t = self.template
        steps = []
        for path, volume in t.mounts:
            source = (sources or {}).get(volume, pod.root / volume)
            steps.append(f"mount --bind {shlex.quote(str(source))} {shlex.quote(path)}")
            if path in t.read_only_mounts:
                steps.append(f"mount -o remount,bind,ro {shlex.quote(path)}")
        if t.read_only_root:
            steps.append("mount -o remount,bind,ro /")
        assert self.broker_bin is not None, "build_image() first"
        env = {"PATH": f"{self.broker_bin}:/usr/local/bin:/usr/bin:/bin", **t.env}
        env.update({name: pod.name for name in t.pod_name_env})
        env = {k: v for k, v in env.items() if k not in without_env}
        run = ["env", "-i", *(f"{k}={v}" for k, v in env.items()), *argv]
        if t.run_as is not None:
            uid, gid = t.run_as
            groups = ",".join(str(g) for g in sorted({gid, t.fs_group or gid}))
            run = ["setpriv", f"--reuid={uid}", f"--regid={gid}", f"--groups={groups}", *run]
        script = " && ".join([*steps, "exec " + shlex.join(run)])
        return ["ip", "netns", "exec", pod.netns, "sh", "-c", script]

    def start(self, pod: Pod) -> None:
        assert not pod.running(), f"{pod.name} is already running"
        pod.starts += 1
        pod.log_path = pod.root / f"container-{pod.starts}.log"
        with open(pod.log_path, "wb") as log:
            pod.process = subprocess.Popen(self._in_pod(pod, self.template.command),
                                           stdout=log, stderr=subprocess.STDOUT,
                                           start_new_session=True)

    def run_broken(self, pod: Pod, config_files: dict[str, str] | None = None,
                   without_env: frozenset[str] = frozenset(), timeout: float = 30.0
                   ) -> tuple[int, str]:
        """The container started once with a ConfigMap holding `config_files` instead, or
        without some environment: (exit code, its log). For starts that must be refused."""
        assert not pod.running(), f"{pod.name} is running"
        sources = {}
        if config_files is not None:
            (volume,) = self.template.config_files
            folder = pod.root / f"{volume}-broken"
            folder.mkdir(exist_ok=True)
            for name, text in config_files.items():
                (folder / name).write_text(text)
            sources[volume] = folder
        done = subprocess.run(self._in_pod(pod, self.template.command, sources, without_env),
                              capture_output=True, text=True, timeout=timeout)
        return done.returncode, done.stdout + done.stderr

    def kill(self, pod: Pod) -> None:
        """The node dies under the pod: SIGKILL, no preStop."""
        assert pod.process is not None
        pod.process.kill()
        pod.process.wait()

    def stop(self, pod: Pod, on_prestop_done: Callable[[], None] | None = None) -> float:
        """The kubelet's stop: preStop inside the pod, then SIGTERM, SIGKILL after the grace
        period. Returns the seconds until the process exited; fails if it needed SIGKILL."""
        assert pod.process is not None
        started = time.monotonic()
        hook = subprocess.run(self._in_pod(pod, self.template.pre_stop), capture_output=True,
                              text=True, timeout=self.template.grace)
        if hook.returncode != 0:
            raise AssertionError(f"{pod.name}: preStop failed ({hook.returncode}): "
                                 f"{hook.stdout}{hook.stderr}")
        if on_prestop_done is not None:
            on_prestop_done()
        if pod.process.poll() is None:
            pod.process.send_signal(signal.SIGTERM)
        left = self.template.grace - (time.monotonic() - started)
        try:
            pod.process.wait(max(left, 0.1))
        except subprocess.TimeoutExpired:
            pod.process.kill()
            pod.process.wait()
            raise AssertionError(f"{pod.name} did not exit within the grace period "
                                 f"({self.template.grace:.0f}s); SIGKILLed") from None
        if pod.process.returncode != 0:
            raise AssertionError(f"{pod.name} exited with {pod.process.returncode}:\n"
                                 f"{pod.log()[-3000:]}")
        return time.monotonic() - started

    def cut_link(self, pod: Pod) -> None:
        _ip("link", "set", pod.veth, "down")

    def restore_link(self, pod: Pod) -> None:
        _ip("link", "set", pod.veth, "up")

    # Probes

    def probe(self, pod: Pod, probe: Probe) -> int:
        """The HTTP status the kubelet would see (0: no answer)."""
        url = f"{probe.scheme}://{pod.address}:{probe.port}{probe.path}"
        try:
            with urllib.request.urlopen(url, timeout=probe.timeout,
                                        context=_UNVERIFIED) as resp:
                return resp.status
        except urllib.error.HTTPError as err:
            return err.code
        except OSError:
            return 0

    def probe_on_node(self, pod: Pod, probe: Probe) -> int:
        """The status the pod's own kubelet sees: asked from inside the pod's network namespace
        (on its node), so a cut link between the pods does not hide the answer."""
        url = f"{probe.scheme}://127.0.0.1:{probe.port}{probe.path}"
        script = ("import ssl, sys, urllib.request, urllib.error\n"
                  "try:\n"
                  "    print(urllib.request.urlopen(sys.argv[1], timeout=float(sys.argv[2]), "
                  "context=ssl._create_unverified_context()).status)\n"
                  "except urllib.error.HTTPError as e:\n"
                  "    print(e.code)\n"
                  "except OSError:\n"
                  "    print(0)\n")
        done = subprocess.run(["ip", "netns", "exec", pod.netns, SYSTEM_PYTHON, "-c", script,
                               url, str(probe.timeout)], capture_output=True, text=True,
                              timeout=probe.timeout + 10)
        return int(done.stdout.strip() or 0)

    def ready(self, pod: Pod) -> bool:
        return pod.running() and self.probe(pod, self.template.readiness) == 200

    def wait_started_and_ready(self, pod: Pod, timeout: float) -> float:
        """Poll the startup probe, then readiness, as the kubelet does (more often than the
        manifest's periods, so the timings measure the server rather than the poll).
        Returns the seconds it took; fails on a process that exits or on `timeout`."""
        started = time.monotonic()
        for probe in (self.template.startup, self.template.readiness):
            while self.probe(pod, probe) != 200:
                if not pod.running():
                    raise AssertionError(f"{pod.name} exited while starting:\n"
                                         f"{pod.log()[-3000:]}")
                if time.monotonic() - started > timeout:
                    raise AssertionError(f"{pod.name}: {probe.path} still failing after "
                                         f"{timeout:.0f}s:\n{pod.log()[-3000:]}")
                time.sleep(0.1)
        return time.monotonic() - started

    def get_json(self, pod: Pod, path: str) -> dict[str, Any]:
        scheme = self.template.startup.scheme  # what monitoring speaks, as the probes know
        url = f"{scheme}://{pod.address}:{self.template.ports['monitor']}{path}"
        with urllib.request.urlopen(url, timeout=5, context=self.client_tls) as resp:
            return json.loads(resp.read())

    def store_dir(self, pod: Pod, store_dir_in_pod: str) -> Path:
        """Where a path inside the pod (on one of its volumes) lies on the host."""
        for path, volume in sorted(self.template.mounts, key=lambda m: -len(m[0])):
            if store_dir_in_pod == path or store_dir_in_pod.startswith(path.rstrip("/") + "/"):
                return pod.root / volume / os.path.relpath(store_dir_in_pod, path)
        raise ValueError(f"{store_dir_in_pod} is on no volume of the pod")


# The kubelet's probes check no certificate (an https probe only asks for an answer).
_UNVERIFIED = ssl._create_unverified_context()


def _free_subnet() -> str:
    """A 10.x.y.0/24 no interface here uses."""
    used = subprocess.run(["ip", "-4", "-o", "addr"], capture_output=True, text=True).stdout
    for _ in range(100):
        candidate = f"10.{secrets.randbelow(50) + 200}.{secrets.randbelow(250) + 1}"
        if f" {candidate}." not in used:
            return candidate
    raise RuntimeError("no free 10.x.y.0/24 subnet found")
