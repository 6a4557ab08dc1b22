"""deploy/: lint, schema, and the checks a schema cannot make.

The lint and schema tests run the real tools (yamllint, kubernetes-validate --strict against
the bundled Kubernetes schemas, hadolint) on the raw files and on `kustomize build deploy/`.
The semantic checks are plain functions over the rendered objects; each is run on the real
manifests, and `test_check_catches` runs each on a deliberately broken copy to prove it can fail.
"""

from __future__ import annotations

import copy
import importlib
import os
import re
import sys
import tomllib
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml

import config
from tests.deploy.conftest import require_tool, run_tool
from tests.deploy.render import REPO, find, load_config

DEPLOY = REPO / "deploy"
# The raw manifests kubectl would read (not the kustomization, not the CRD-based monitoring).
RAW_MANIFESTS = sorted(
    p for p in DEPLOY.glob("*.yaml") if p.name != "kustomization.yaml"
)
# The oldest Kubernetes these manifests are meant for (persistentVolumeClaimRetentionPolicy is
# on by default from 1.27) and the newest schemas kubernetes-validate bundles.
KUBERNETES_VERSIONS = ["1.27.0", None]
NAMESPACE = "messaging"
CONTAINER_PORTS = {"client": 4222, "cluster": 6222, "monitor": 8222}
PROBE_PATHS = {
    "startupProbe": "/healthz",
    "readinessProbe": "/healthz?js-enabled=true",
    "livenessProbe": "/healthz?js-server-only=true",
}
# What the last of the server's shutdown needs after lame duck: closing routes, final fsyncs.
SHUTDOWN_MARGIN = 10.0
# Raft logs, snapshots and index files share the volume and are not counted in max_file_store.
VOLUME_HEADROOM = 0.9

Objects = list[dict[str, Any]]


def project_version() -> str:
    """The version pyproject.toml gives the distribution: literal, or `dynamic` from an attr."""
    with open(REPO / "pyproject.toml", "rb") as f:
        pyproject = tomllib.load(f)
    if "version" in pyproject["project"]:
        return pyproject["project"]["version"]
    module, _, name = pyproject["tool"]["setuptools"]["dynamic"]["version"]["attr"].rpartition(".")
    return getattr(importlib.import_module(module), name)


# --- accessors ----------------------------------------------------------------------------------


def statefulset(objects: Objects) -> dict[str, Any]:
    return find(objects, "StatefulSet", "nats")


def pod_spec(objects: Objects) -> dict[str, Any]:
    return statefulset(objects)["spec"]["template"]["spec"]


def container(objects: Objects) -> dict[str, Any]:
    containers = pod_spec(objects)["containers"]
    assert [c["name"] for c in containers] == ["nats"], "one container, named nats"
    return containers[0]


def declared_ports(objects: Objects) -> dict[str, int]:
    return {p["name"]: p["containerPort"] for p in container(objects).get("ports", [])}


def pod_labels(objects: Objects) -> dict[str, str]:
    return statefulset(objects)["spec"]["template"]["metadata"].get("labels", {})


def selects_pods(selector: dict[str, Any] | None, objects: Objects) -> bool:
    """Whether a matchLabels selector is non-empty and matches the StatefulSet's pods."""
    labels = (selector or {}).get("matchLabels") or {}
    assert not (selector or {}).get("matchExpressions"), "only matchLabels selectors here"
    return bool(labels) and labels.items() <= pod_labels(objects).items()


def mounts(objects: Objects) -> dict[str, dict[str, Any]]:
    """mountPath -> the volumeMount."""
    return {m["mountPath"]: m for m in container(objects).get("volumeMounts", [])}


def volumes(objects: Objects) -> dict[str, dict[str, Any]]:
    return {v["name"]: v for v in pod_spec(objects).get("volumes", [])}


def mount_of(objects: Objects, path: str) -> dict[str, Any] | None:
    """The volumeMount whose directory holds `path` (the deepest one)."""
    best = None
    for mount_path, mount in mounts(objects).items():
        if PurePosixPath(path).is_relative_to(mount_path) and (
            best is None or len(mount_path) > len(best["mountPath"])
        ):
            best = mount
    return best


def config_argument(objects: Objects) -> str:
    command = container(objects)["command"] + container(objects).get("args", [])
    for flag in ("-c", "--config", "-config"):
        if flag in command:
            return command[command.index(flag) + 1]
    raise AssertionError(f"no -c <config file> in the container's command {command}")


def config_text(objects: Objects) -> str:
    """nats.conf exactly as the container sees it: the ConfigMap key behind the -c path."""
    path = config_argument(objects)
    mount = mount_of(objects, path)
    assert mount is not None, f"{path} is on no volume"
    volume = volumes(objects)[mount["name"]]
    assert "configMap" in volume, f"{path} is not on a ConfigMap volume"
    relative = str(PurePosixPath(path).relative_to(mount["mountPath"]))
    items = {i["path"]: i["key"] for i in volume["configMap"].get("items", [])}
    key = items.get(relative, relative) if items else relative
    name = volume["configMap"]["name"]
    matching = [o for o in objects if o["kind"] == "ConfigMap" and o["metadata"]["name"] == name]
    assert matching, f"the pod mounts ConfigMap {name}, which the kustomization does not produce"
    data = matching[0].get("data", {})
    assert key in data, f"ConfigMap {name} has no key {key!r} (it has {sorted(data)})"
    return data[key]


def pod_options(objects: Objects, pod_name: str, tmp_dir: Path) -> config.Options:
    """Our own loader's reading of the config, as pod `pod_name` starts with it."""
    env = {e["name"]: e for e in container(objects).get("env", [])}
    assert env.get("POD_NAME", {}).get("valueFrom", {}).get("fieldRef", {}).get(
        "fieldPath") == "metadata.name", "POD_NAME must come from the pod's name (downward API)"
    return load_config(config_text(objects), {"POD_NAME": pod_name}, tmp_dir / f"{pod_name}.conf")


def pod_names(objects: Objects) -> list[str]:
    sts = statefulset(objects)
    return [f"{sts['metadata']['name']}-{i}" for i in range(sts["spec"]["replicas"])]


def quantity(text: str | int) -> float:
    """A Kubernetes quantity ("20Gi", "500m", "1e3") as a number."""
    suffixes = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60,
                "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15, "E": 1e18, "m": 1e-3, "": 1}
    match = re.fullmatch(r"([0-9.]+(?:[eE][-+]?[0-9]+)?)([a-zA-Z]*)", str(text))
    assert match and match.group(2) in suffixes, f"not a quantity: {text!r}"
    return float(match.group(1)) * suffixes[match.group(2)]


def dockerfile() -> str:
    return (DEPLOY / "Dockerfile").read_text()


# --- semantic checks (each raises AssertionError, or ConfigError for a config we refuse) --------


def check_workload(objects: Objects) -> None:
    sts = statefulset(objects)["spec"]
    assert sts["replicas"] == 3, "three voters: an R3 stream keeps quorum with one pod gone"
    assert sts["podManagementPolicy"] == "Parallel", "OrderedReady deadlocks a full restart"
    c = container(objects)
    assert c["command"] == ["broker", "-c", "/etc/nats/nats.conf"]
    assert c["image"] == f"pynats-broker:{project_version()}", "image tag = pyproject version"
    assert declared_ports(objects) == CONTAINER_PORTS


def check_selectors(objects: Objects) -> None:
    sts = statefulset(objects)
    assert selects_pods(sts["spec"]["selector"], objects), "StatefulSet selector vs its labels"
    for service in (o for o in objects if o["kind"] == "Service"):
        name = service["metadata"]["name"]
        assert selects_pods({"matchLabels": service["spec"].get("selector")}, objects), (
            f"Service {name} does not select the nats pods")
    for constraint in pod_spec(objects).get("topologySpreadConstraints", []):
        assert selects_pods(constraint["labelSelector"], objects), "spread counts other pods"


def check_ports(objects: Objects) -> None:
    ports = declared_ports(objects)

    def names_port(port: str | int, where: str) -> None:
        if isinstance(port, str):
            assert port in ports, f"{where} names port {port!r}, not one of {sorted(ports)}"
        else:
            assert port in ports.values(), f"{where} uses port {port}, not a container port"

    c = container(objects)
    for probe in PROBE_PATHS:
        assert probe in c, f"no {probe}"
        names_port(c[probe]["httpGet"]["port"], probe)
    for service in (o for o in objects if o["kind"] == "Service"):
        for port in service["spec"]["ports"]:
            where = f"Service {service['metadata']['name']} port {port.get('name')}"
            target = port.get("targetPort", port["port"])
            names_port(target, where)
            if isinstance(target, str):
                assert port["port"] == ports[target], f"{where}: {port['port']} != container port"
    for policy in (o for o in objects if o["kind"] == "NetworkPolicy"):
        for rule in policy["spec"].get("ingress", []):
            for port in rule.get("ports", []):
                names_port(port["port"], f"NetworkPolicy {policy['metadata']['name']}")


def check_probes(objects: Objects) -> None:
    c = container(objects)
    for probe, path in PROBE_PATHS.items():
        assert c[probe]["httpGet"]["path"] == path, f"{probe} must ask {path}"
    startup = c["startupProbe"]
    budget = startup.get("periodSeconds", 10) * startup.get("failureThreshold", 3)
    assert budget >= 300, f"startup budget {budget}s: recovering big stores takes minutes"


def check_config(objects: Objects, tmp_dir: Path) -> None:
    """Every pod's view of the ConfigMap, through our loader, agrees with the manifests."""
    sts = statefulset(objects)
    namespace = sts["metadata"].get("namespace")
    service = sts["spec"]["serviceName"]
    ports = declared_ports(objects)
    expected_routes = {
        f"{pod}.{service}.{namespace}.svc.cluster.local:{ports['cluster']}"
        for pod in pod_names(objects)
    }
    for pod in pod_names(objects):
        options = pod_options(objects, pod, tmp_dir)
        assert options.server_name == pod, "server_name must be $POD_NAME"
        routes = {re.sub(r"^[a-z-]+://", "", route) for route in options.cluster.routes}
        assert routes == expected_routes, (
            f"routes {sorted(routes)} != the {len(expected_routes)} pods of the StatefulSet")
        assert len(options.cluster.routes) == len(expected_routes), "a route listed twice"
        assert options.port == ports["client"]
        assert options.cluster.port == ports["cluster"]
        assert options.http_port == ports["monitor"]
        assert options.jetstream.enabled


def check_lame_duck(objects: Objects, tmp_dir: Path) -> None:
    options = pod_options(objects, pod_names(objects)[0], tmp_dir)
    grace = pod_spec(objects).get("terminationGracePeriodSeconds", 30)
    assert grace >= options.lame_duck_duration + SHUTDOWN_MARGIN, (
        f"terminationGracePeriodSeconds {grace} does not cover lame_duck_duration "
        f"{options.lame_duck_duration:g}s plus {SHUTDOWN_MARGIN:g}s to shut down")
    pre_stop = container(objects)["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop == ["broker", "--signal", f"ldm={options.pid_file}"], (
        f"preStop {pre_stop} does not signal the pid file of the config ({options.pid_file})")
    mount = mount_of(objects, options.pid_file)
    assert mount is not None and "emptyDir" in volumes(objects)[mount["name"]], (
        "the pid file must be on an emptyDir (the root filesystem is read-only)")


def check_storage(objects: Objects, tmp_dir: Path) -> None:
    options = pod_options(objects, pod_names(objects)[0], tmp_dir)
    claims = statefulset(objects)["spec"]["volumeClaimTemplates"]
    templates = {t["metadata"]["name"]: t for t in claims}
    mount = mount_of(objects, options.jetstream.store_dir)
    assert mount is not None and mount["name"] in templates, (
        f"store_dir {options.jetstream.store_dir} is not on the PersistentVolumeClaim")
    assert not mount.get("readOnly")
    size = quantity(templates[mount["name"]]["spec"]["resources"]["requests"]["storage"])
    assert 0 < options.jetstream.max_file_store < size * VOLUME_HEADROOM, (
        f"max_file_store {options.jetstream.max_file_store} must stay below "
        f"{VOLUME_HEADROOM:.0%} of the volume ({size:.0f} bytes)")
    memory = quantity(container(objects)["resources"]["limits"]["memory"])
    assert 0 < options.jetstream.max_memory_store < memory, "memory store above the memory limit"


def check_writable_paths(objects: Objects, tmp_dir: Path) -> None:
    c = container(objects)
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    options = pod_options(objects, pod_names(objects)[0], tmp_dir)
    for path in (options.pid_file, options.jetstream.store_dir, "/tmp/x"):
        mount = mount_of(objects, path)
        assert mount is not None and not mount.get("readOnly"), (
            f"{path} must be on a writable volume: the root filesystem is read-only")
    assert mounts(objects)["/etc/nats"].get("readOnly") is True, "mount the config read-only"


def check_services(objects: Objects) -> None:
    service_name = statefulset(objects)["spec"]["serviceName"]
    headless = find(objects, "Service", service_name)
    spec = headless["spec"]
    assert spec.get("clusterIP") == "None", "the StatefulSet's service must be headless"
    assert spec.get("publishNotReadyAddresses") is True, (
        "pods must resolve each other before they are ready")
    assert {p["name"]: p["port"] for p in spec["ports"]} == CONTAINER_PORTS
    clients = [o for o in objects if o["kind"] == "Service" and o is not headless]
    assert len(clients) == 1, "one client Service"
    assert clients[0]["spec"].get("clusterIP") != "None"
    assert [p["port"] for p in clients[0]["spec"]["ports"]] == [CONTAINER_PORTS["client"]]


def check_security(objects: Objects) -> None:
    uid, gid = re.search(r"^USER (\d+):(\d+)$", dockerfile(), re.M).groups()
    pod = pod_spec(objects)["securityContext"]
    assert pod["runAsNonRoot"] is True
    ids = (str(pod["runAsUser"]), str(pod["runAsGroup"]), str(pod["fsGroup"]))
    assert ids == (uid, gid, gid), "runAsUser/runAsGroup/fsGroup must be the image's user"
    sc = container(objects)["securityContext"]
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["capabilities"]["drop"] == ["ALL"]
    assert not sc["capabilities"].get("add")
    resources = container(objects)["resources"]
    assert resources["requests"]["cpu"] and resources["limits"]["memory"]


def check_spread(objects: Objects) -> None:
    keys = {(c["topologyKey"], c["whenUnsatisfiable"])
            for c in pod_spec(objects).get("topologySpreadConstraints", [])}
    assert ("kubernetes.io/hostname", "DoNotSchedule") in keys, "pods must spread over hosts"


def check_disruption_budget(objects: Objects) -> None:
    pdb = find(objects, "PodDisruptionBudget")
    assert pdb["spec"].get("maxUnavailable") == 1
    assert selects_pods(pdb["spec"]["selector"], objects), "the PDB does not cover the pods"


def check_network_policy(objects: Objects) -> None:
    policies = [o for o in objects if o["kind"] == "NetworkPolicy"
                and selects_pods(o["spec"]["podSelector"], objects)]
    assert policies, "no NetworkPolicy selects the nats pods"
    allowed: dict[str, list[dict[str, Any]]] = {name: [] for name in CONTAINER_PORTS}
    for policy in policies:
        assert "Ingress" in policy["spec"]["policyTypes"]
        for rule in policy["spec"].get("ingress", []):
            ports = [p["port"] for p in rule.get("ports", [])] or list(CONTAINER_PORTS)
            for port in ports:
                allowed[port].append(rule)
    for rule in allowed["cluster"]:
        peers = rule.get("from")
        assert peers, "an ingress rule without `from` opens the cluster port to everyone"
        for peer in peers:
            assert set(peer) == {"podSelector"} and selects_pods(peer["podSelector"], objects), (
                f"the cluster port is open to {peer}: only the nats pods may use it")
    assert allowed["cluster"], "the pods cannot reach each other's cluster port"
    assert allowed["client"] and allowed["monitor"], "clients or monitoring are shut out"


def check_namespace_and_rollout(objects: Objects) -> None:
    for obj in objects:
        assert obj["metadata"].get("namespace") == NAMESPACE, f"{obj['kind']} outside {NAMESPACE}"
    name = volumes(objects)["config"]["configMap"]["name"]
    assert re.fullmatch(r"nats-config-[a-z0-9]{10}", name), (
        "the config volume must name the hashed, generated ConfigMap: a config change then "
        "changes the pod template and rolls the pods")


def check_dockerfile(objects: Objects) -> None:
    text = dockerfile()
    assert re.search(r"^ARG BASE=python:3\.11-slim-bookworm$", text, re.M)
    assert re.search(rf"^ARG VERSION={re.escape(project_version())}$", text, re.M), (
        "the Dockerfile's VERSION must be the pyproject version")
    cmd = re.search(r"^CMD (\[.*\])$", text, re.M)
    assert cmd and yaml.safe_load(cmd.group(1)) == container(objects)["command"]
    exposed = {int(p) for p in re.search(r"^EXPOSE (.*)$", text, re.M).group(1).split()}
    assert exposed == set(CONTAINER_PORTS.values())
    # The last stage runs as the non-root user, and installs nothing from a registry.
    final = text.rsplit("\nFROM ", 1)[1]
    assert re.search(r"^USER \d+:\d+$", final, re.M)
    assert "--no-index" in text


CHECKS: dict[str, Callable[..., None]] = {
    "workload": check_workload,
    "selectors": check_selectors,
    "ports": check_ports,
    "probes": check_probes,
    "config": check_config,
    "lame_duck": check_lame_duck,
    "storage": check_storage,
    "writable_paths": check_writable_paths,
    "services": check_services,
    "security": check_security,
    "spread": check_spread,
    "disruption_budget": check_disruption_budget,
    "network_policy": check_network_policy,
    "namespace_and_rollout": check_namespace_and_rollout,
    "dockerfile": check_dockerfile,
}
NEEDS_TMP = {"config", "lame_duck", "storage", "writable_paths"}


def run_check(name: str, objects: Objects, tmp_dir: Path) -> None:
    check = CHECKS[name]
    if name in NEEDS_TMP:
        check(objects, tmp_dir)
    else:
        check(objects)


@pytest.mark.parametrize("name", sorted(CHECKS))
def test_manifests(name: str, base: Objects, tmp_path: Path) -> None:
    run_check(name, base, tmp_path)


# --- each check can fail: a broken copy of the manifests must be refused ------------------------


def _container(objects: Objects) -> dict[str, Any]:
    return container(objects)


def _config_map(objects: Objects) -> dict[str, Any]:
    return find(objects, "ConfigMap", "nats-config")


def _edit_conf(old: str, new: str) -> Callable[[Objects], None]:
    def edit(objects: Objects) -> None:
        data = _config_map(objects)["data"]
        assert old in data["nats.conf"]
        data["nats.conf"] = data["nats.conf"].replace(old, new)
    return edit


def _set(getter: Callable[[Objects], dict[str, Any]], key: str, value: Any):
    def edit(objects: Objects) -> None:
        getter(objects)[key] = value
    return edit


BROKEN: list[tuple[str, str, Callable[[Objects], None]]] = [
    ("selectors", "pod label changed",
     lambda o: pod_labels(o).update({"app.kubernetes.io/name": "natz"})),
    ("ports", "probe names an undeclared port",
     lambda o: _container(o)["livenessProbe"]["httpGet"].update(port="metrics")),
    ("ports", "Service targetPort misspelt",
     lambda o: find(o, "Service", "nats-client")["spec"]["ports"][0].update(targetPort="clients")),
    ("probes", "liveness on the full /healthz (restart-loops a catching-up pod)",
     lambda o: _container(o)["livenessProbe"]["httpGet"].update(path="/healthz")),
    ("config", "ConfigMap key renamed",
     lambda o: _config_map(o).update(data={"server.conf": _config_map(o)["data"]["nats.conf"]})),
    ("config", "a key our loader does not implement",
     _edit_conf("listen:", "bogus_key: 1\nlisten:")),
    ("config", "replicas no longer match the routes", _set(lambda o: statefulset(o)["spec"],
                                                           "replicas", 5)),
    ("config", "a route to the wrong namespace",
     _edit_conf("nats-2.nats.messaging", "nats-2.nats.default")),
    ("lame_duck", "grace period shorter than lame duck",
     _set(lambda o: pod_spec(o), "terminationGracePeriodSeconds", 30)),
    ("lame_duck", "preStop signals another pid file",
     lambda o: _container(o)["lifecycle"]["preStop"]["exec"].update(
         command=["broker", "--signal", "ldm=/tmp/nats.pid"])),
    ("storage", "store_dir off the volume",
     _edit_conf("store_dir: /data/jetstream", "store_dir: /var/lib/nats")),
    ("storage", "volume smaller than max_file_store",
     lambda o: statefulset(o)["spec"]["volumeClaimTemplates"][0]["spec"]["resources"][
         "requests"].update(storage="16Gi")),
    ("writable_paths", "no /tmp volume",
     lambda o: _container(o).update(volumeMounts=[
         m for m in _container(o)["volumeMounts"] if m["mountPath"] != "/tmp"])),
    ("services", "headless Service hides unready pods",
     lambda o: find(o, "Service", "nats")["spec"].update(publishNotReadyAddresses=False)),
    ("services", "serviceName is not the headless Service",
     _set(lambda o: statefulset(o)["spec"], "serviceName", "nats-client")),
    ("security", "writable root filesystem",
     lambda o: _container(o)["securityContext"].update(readOnlyRootFilesystem=False)),
    ("security", "uid other than the image's",
     lambda o: pod_spec(o)["securityContext"].update(runAsUser=1000)),
    ("disruption_budget", "PDB selects nothing of ours",
     lambda o: find(o, "PodDisruptionBudget")["spec"].update(
         selector={"matchLabels": {"app": "other"}})),
    ("network_policy", "cluster port open to every namespace",
     lambda o: find(o, "NetworkPolicy", "nats")["spec"]["ingress"][0]["from"].append(
         {"namespaceSelector": {}})),
    ("namespace_and_rollout", "a plain ConfigMap name (no rollout on change)",
     lambda o: pod_spec(o)["volumes"][0]["configMap"].update(name="nats-config")),
    ("workload", "OrderedReady start",
     _set(lambda o: statefulset(o)["spec"], "podManagementPolicy", "OrderedReady")),
    ("spread", "no spread over hosts",
     _set(lambda o: pod_spec(o), "topologySpreadConstraints", [])),
]


@pytest.mark.parametrize(("name", "breakage", "break_it"), BROKEN, ids=[b[1] for b in BROKEN])
def test_check_catches(name: str, breakage: str, break_it: Callable[[Objects], None],
                       base: Objects, tmp_path: Path) -> None:
    broken = copy.deepcopy(base)
    break_it(broken)
    with pytest.raises((AssertionError, config.ConfigError)):
        run_check(name, broken, tmp_path)


def test_every_check_has_a_breakage() -> None:
    assert {b[0] for b in BROKEN} >= set(CHECKS) - {"dockerfile"}


# --- the tools ----------------------------------------------------------------------------------


def test_broker_accepts_the_config() -> None:
    """`broker -t`, the check an operator runs, on the file the ConfigMap is made from."""
    for pod in ("nats-0", "nats-2"):
        proc = run_tool([sys.executable, "-m", "broker", "-t", "-c", "deploy/nats.conf"],
                        env={**os.environ, "POD_NAME": pod})
        assert proc.returncode == 0, proc.stderr + proc.stdout


def _validate(paths: list[str], version: str | None) -> str:
    program = require_tool("kubernetes-validate")
    args = [program, "--strict"] + (["-k", version] if version else [])
    proc = run_tool(args + paths)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # An object without a schema is only a warning to kubernetes-validate: not here, every
    # object of the base is a core kind and must be checked.
    assert "WARN" not in proc.stdout, proc.stdout
    return proc.stdout


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS, ids=lambda v: v or "latest")
def test_rendered_manifests_validate_strict(version: str | None, base: Objects,
                                            tmp_path: Path) -> None:
    rendered = tmp_path / "rendered.yaml"
    rendered.write_text(yaml.safe_dump_all(base))
    out = _validate([str(rendered)], version)
    assert out.count("passed") == len(base)


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS, ids=lambda v: v or "latest")
def test_raw_manifests_validate_strict(version: str | None) -> None:
    out = _validate([str(p) for p in RAW_MANIFESTS], version)
    assert out.count("passed") == len(RAW_MANIFESTS)


def test_validation_refuses_a_misspelt_field(tmp_path: Path) -> None:
    """--strict really refuses what the API server would: a field that does not exist."""
    program = require_tool("kubernetes-validate")
    broken = tmp_path / "statefulset.yaml"
    broken.write_text((DEPLOY / "statefulset.yaml").read_text().replace(
        "terminationGracePeriodSeconds:", "terminationGracePeriod:"))
    proc = run_tool([program, "--strict", str(broken)])
    assert proc.returncode != 0 and "terminationGracePeriod" in proc.stdout, proc.stdout


def test_yamllint() -> None:
    program = require_tool("yamllint")
    proc = run_tool([program, "--strict", "-c", ".yamllint", "deploy", "tests/deploy"])
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_hadolint() -> None:
    program = require_tool("hadolint")
    proc = run_tool([program, "--no-color", "deploy/Dockerfile"])
    assert proc.returncode == 0, proc.stdout + proc.stderr
