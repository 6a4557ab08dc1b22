"""deploy/monitoring/: the ServiceMonitor, the alerts and the Grafana dashboard.

Without promtool: the rule file is read as YAML and every expression is checked to ask only for
the exporter's series (prometheus-nats-exporter names, below), and only for the leader's series
of a stream or consumer. With promtool (`make deploy-tools`): `promtool check rules`, the unit
tests in promtool/alerts.test.yaml (alerts fire on the right series, and not on followers'),
and the dashboard's queries parsed as rules.
"""

from __future__ import annotations

import copy
import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.conftest import require_tool, run_tool
from tests.deploy.crd_schemas import SCHEMAS
from tests.deploy.promql import by_labels, matchers, selectors
from tests.deploy.render import REPO, find

MONITORING = REPO / "deploy" / "monitoring"
RULES_FILE = MONITORING / "prometheusrule.yaml"
DASHBOARD_FILE = MONITORING / "nats-jetstream.json"
PROMTOOL_TESTS = REPO / "tests" / "deploy" / "promtool" / "alerts.test.yaml"

# /metrics as broker/metrics.py writes it: prometheus-nats-exporter's names and labels.
CONSUMER_METRICS = {
    "jetstream_consumer_num_pending",
    "jetstream_consumer_num_ack_pending",
    "jetstream_consumer_num_redelivered",
    "jetstream_consumer_num_waiting",
    "jetstream_consumer_delivered_stream_seq",
    "jetstream_consumer_ack_floor_stream_seq",
}
STREAM_METRICS = {
    "jetstream_stream_total_messages",
    "jetstream_stream_total_bytes",
    "jetstream_stream_first_seq",
    "jetstream_stream_last_seq",
    "jetstream_stream_consumer_count",
    "jetstream_stream_limit_bytes",
    "jetstream_stream_limit_messages",
    "jetstream_stream_limit_age_seconds",
}
# Per server (each replica's own storage against its pod's max_file_store), no leader label.
SERVER_METRICS = {"jetstream_account_storage_used", "jetstream_server_max_storage"}
KNOWN_METRICS = CONSUMER_METRICS | STREAM_METRICS | SERVER_METRICS | {"up"}
CONSUMER_LABELS = {"stream_name", "consumer_name", "server_name", "cluster", "is_consumer_leader"}
STREAM_LABELS = {"stream_name", "server_name", "cluster", "is_stream_leader"}
SEVERITIES = {"info", "warning", "critical"}
# The seed's four signals, each by the series an alert on it must read.
SIGNALS = {
    "ack pending": {"jetstream_consumer_num_ack_pending"},
    "redeliveries": {"jetstream_consumer_num_redelivered"},
    "consumer lag": {"jetstream_stream_last_seq", "jetstream_consumer_ack_floor_stream_seq"},
    "storage vs max_bytes": {"jetstream_stream_total_bytes", "jetstream_stream_limit_bytes"},
}

Objects = list[dict[str, Any]]


def rules(rule_object: dict[str, Any]) -> list[dict[str, Any]]:
    return [rule for group in rule_object["spec"]["groups"] for rule in group["rules"]]


def dashboard_queries(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    """(panel title, expr) of every panel target, rows' nested panels included."""
    found = []
    for panel in dashboard["panels"]:
        for inner in [panel, *panel.get("panels", [])]:
            for target in inner.get("targets", []):
                found.append((inner["title"], target["expr"]))
    return found


def variable_queries(dashboard: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(variable, selector, label) of every `label_values(selector, label)` variable."""
    found = []
    for variable in dashboard["templating"]["list"]:
        if variable["type"] != "query":
            continue
        query = variable["query"]["query"] if isinstance(variable["query"], dict) \
            else variable["query"]
        match = re.fullmatch(r"label_values\((.*),\s*(\w+)\)", query)
        assert match, f"variable {variable['name']}: expected label_values(...), got {query}"
        found.append((variable["name"], match.group(1), match.group(2)))
    return found


# --- checks (each raises AssertionError) --------------------------------------------------------


def check_expr_series(expr: str, where: str) -> None:
    """Only known series; a stream's or consumer's series only from its leader."""
    found = selectors(expr)
    assert found, f"{where}: no series in {expr!r}"
    for name, labels in found:
        assert name in KNOWN_METRICS, f"{where}: {name or 'a nameless selector'} is not exported"
        names = {label for label, _, _ in labels}
        if name in CONSUMER_METRICS:
            assert names <= CONSUMER_LABELS, f"{where}: {name} lacks {names - CONSUMER_LABELS}"
            assert ("is_consumer_leader", "=", "true") in labels, (
                f"{where}: {name} without is_consumer_leader=\"true\": followers' numbers count")
        if name in STREAM_METRICS:
            assert names <= STREAM_LABELS, f"{where}: {name} lacks {names - STREAM_LABELS}"
            assert ("is_stream_leader", "=", "true") in labels, (
                f"{where}: {name} without is_stream_leader=\"true\": followers' numbers count")


def check_rules(rule_object: dict[str, Any]) -> None:
    all_rules = rules(rule_object)
    assert all_rules, "no rules"
    names = [rule.get("alert") for rule in all_rules]
    assert len(names) == len(set(names)), "alert names must be unique"
    for rule in all_rules:
        name = rule.get("alert")
        assert name, f"only alerts here (recording rules would add series): {rule}"
        assert re.fullmatch(r"\d+[smh]", str(rule.get("for", ""))), f"{name}: no `for` duration"
        assert rule.get("labels", {}).get("severity") in SEVERITIES, f"{name}: severity"
        annotations = rule.get("annotations", {})
        for key in ("summary", "description"):
            assert str(annotations.get(key, "")).strip(), f"{name}: no {key} annotation"
        check_expr_series(rule["expr"], name)
        # An annotation can only show labels the expression keeps.
        kept = by_labels(rule["expr"])
        if kept:
            for text in annotations.values():
                for label in re.findall(r"\$labels\.(\w+)", text):
                    assert label in kept, f"{name}: annotation uses {label}, aggregated away"
        if "jetstream_stream_limit_bytes" in rule["expr"]:
            assert re.search(r"jetstream_stream_limit_bytes\{[^}]*\}\s*>\s*0", rule["expr"]), (
                f"{name}: max_bytes -1 means unlimited: keep only limit_bytes > 0")
    for signal, series in SIGNALS.items():
        assert any(series <= {n for n, _ in selectors(rule["expr"])} for rule in all_rules), (
            f"no alert on {signal}")


def check_dashboard(dashboard: dict[str, Any]) -> None:
    variables = {v["name"] for v in dashboard["templating"]["list"]}
    ids = []
    for panel in dashboard["panels"]:
        ids.append(panel["id"])
        assert {"h", "w", "x", "y"} <= set(panel["gridPos"]), f"{panel['title']}: gridPos"
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] == "${datasource}", f"{panel['title']}: datasource"
        for target in panel["targets"]:
            used = set(re.findall(r"\$\{?(\w+)\}?", target["expr"])) - {"__rate_interval"}
            assert used <= variables, f"{panel['title']}: undefined variables {used - variables}"
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    queries = dashboard_queries(dashboard)
    for title, expr in queries:
        check_expr_series(expr, title)
    for name, selector, _label in variable_queries(dashboard):
        # Variables list label values of any replica: no leader filter needed there.
        metric = re.match(r"\w+", selector).group()
        assert metric in KNOWN_METRICS, f"variable {name}: {metric} is not exported"
        assert {label for label, _, _ in matchers(selector)} <= CONSUMER_LABELS | STREAM_LABELS
    shown = {name for _, expr in queries for name, _ in selectors(expr)}
    for signal, series in SIGNALS.items():
        assert series <= shown, f"the dashboard does not show {signal}"
    per_stream = [t for t, expr in queries if "stream_name" in by_labels(expr)]
    per_consumer = [t for t, expr in queries if "consumer_name" in by_labels(expr)]
    assert per_stream and per_consumer, "panels must be per stream and per consumer"


def check_service_monitor(monitoring: Objects, base: Objects) -> None:
    monitor = find(monitoring, "ServiceMonitor")
    wanted = monitor["spec"]["selector"]["matchLabels"]
    namespace = monitor["metadata"]["namespace"]
    services = [o for o in base if o["kind"] == "Service"
                and o["metadata"]["namespace"] == namespace
                and wanted.items() <= o["metadata"].get("labels", {}).items()]
    assert len(services) == 1, f"the ServiceMonitor selects {len(services)} Services, not one"
    service = services[0]
    assert service["spec"].get("publishNotReadyAddresses") is True, (
        "scrape through the Service that lists every pod, ready or not")
    statefulset = find(base, "StatefulSet")
    assert service["spec"]["selector"].items() <= \
        statefulset["spec"]["template"]["metadata"]["labels"].items()
    ports = {p["name"]: p for p in service["spec"]["ports"]}
    container_ports = {p["name"]: p["containerPort"]
                       for p in statefulset["spec"]["template"]["spec"]["containers"][0]["ports"]}
    for endpoint in monitor["spec"]["endpoints"]:
        assert endpoint["port"] in ports, f"the Service has no port {endpoint['port']}"
        target = ports[endpoint["port"]]["targetPort"]
        assert container_ports.get(target, target) == 8222, "scrape the monitor port (8222)"
        assert endpoint["path"] == "/metrics"


def check_prometheus_policy(monitoring: Objects, base: Objects) -> None:
    policy = find(monitoring, "NetworkPolicy")
    pods = find(base, "StatefulSet")["spec"]["template"]["metadata"]["labels"]
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= pods.items()
    ports = {p["port"] for rule in policy["spec"]["ingress"] for p in rule.get("ports", [])}
    assert ports == {"monitor"}, f"Prometheus needs the monitor port only, not {ports}"


def check_schemas(monitoring: Objects) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    kinds = set()
    for obj in monitoring:
        if obj["kind"] in SCHEMAS:
            kinds.add(obj["kind"])
            jsonschema.validate(obj, SCHEMAS[obj["kind"]])
    assert kinds == set(SCHEMAS)


# --- tests --------------------------------------------------------------------------------------


def rule_object() -> dict[str, Any]:
    return yaml.safe_load(RULES_FILE.read_text())


def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD_FILE.read_text())


def test_rules() -> None:
    check_rules(rule_object())


def test_dashboard() -> None:
    check_dashboard(dashboard())


def test_rendered_objects(monitoring: Objects) -> None:
    kinds = sorted(o["kind"] for o in monitoring)
    assert kinds == ["ConfigMap", "NetworkPolicy", "PrometheusRule", "ServiceMonitor"]
    assert find(monitoring, "PrometheusRule") == {**rule_object(), "metadata": find(
        monitoring, "PrometheusRule")["metadata"]}
    board = find(monitoring, "ConfigMap")
    assert board["metadata"]["labels"].get("grafana_dashboard") == "1", (
        "Grafana's sidecar loads ConfigMaps labelled grafana_dashboard")
    assert board["metadata"]["name"] == "nats-jetstream-dashboard", "no hash: no stale copies"
    assert json.loads(board["data"][DASHBOARD_FILE.name]) == dashboard()


def test_service_monitor(monitoring: Objects, base: Objects) -> None:
    check_service_monitor(monitoring, base)


def test_prometheus_network_policy(monitoring: Objects, base: Objects) -> None:
    check_prometheus_policy(monitoring, base)


def test_crd_schemas(monitoring: Objects) -> None:
    check_schemas(monitoring)


def test_core_objects_validate_strict(monitoring: Objects, tmp_path: Path) -> None:
    """kubernetes-validate checks the core objects; it warns about (and skips) the CRDs."""
    program = require_tool("kubernetes-validate")
    rendered = tmp_path / "monitoring.yaml"
    rendered.write_text(yaml.safe_dump_all(monitoring))
    proc = run_tool([program, "--strict", str(rendered)])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    unchecked = set(re.findall(r"WARN .* kind (\w+) ", proc.stdout))
    assert unchecked == set(SCHEMAS), f"left unchecked: {unchecked}"
    assert proc.stdout.count("passed") == len(monitoring) - len(SCHEMAS)


# --- the checks can fail ------------------------------------------------------------------------


def _first_rule(obj: dict[str, Any]) -> dict[str, Any]:
    return rules(obj)[1]  # [0] is NatsServerDown; [1] reads consumer series


BROKEN_RULES = [
    ("an unknown metric", lambda o: _first_rule(o).update(expr="nats_consumer_pending > 10")),
    ("a follower's numbers counted", lambda o: _first_rule(o).update(
        expr=_first_rule(o)["expr"].replace('is_consumer_leader="true"', ""))),
    ("no for", lambda o: _first_rule(o).pop("for")),
    ("no severity", lambda o: _first_rule(o)["labels"].pop("severity")),
    ("no description", lambda o: _first_rule(o)["annotations"].pop("description")),
    ("a label aggregated away", lambda o: _first_rule(o)["annotations"].update(
        summary="on {{ $labels.server_name }}")),
    ("unlimited streams alerting", lambda o: [r.update(expr=r["expr"].replace(
        '{is_stream_leader="true"} > 0', '{is_stream_leader="true"}')) for r in rules(o)]),
    ("a signal without an alert", lambda o: o["spec"]["groups"][1].update(rules=[
        r for r in rules(o) if "num_redelivered" not in r["expr"]])),
]


@pytest.mark.parametrize(("breakage", "break_it"), BROKEN_RULES, ids=[b[0] for b in BROKEN_RULES])
def test_rule_check_catches(breakage: str, break_it) -> None:
    broken = copy.deepcopy(rule_object())
    break_it(broken)
    with pytest.raises(AssertionError):
        check_rules(broken)


def test_dashboard_check_catches() -> None:
    broken = dashboard()
    target = next(p for p in broken["panels"] if p["type"] != "row")["targets"][0]
    target["expr"] = target["expr"].replace('is_consumer_leader="true", ', "")
    with pytest.raises(AssertionError, match="is_consumer_leader"):
        check_dashboard(broken)


def test_schema_check_catches(monitoring: Objects) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    broken = copy.deepcopy(monitoring)
    find(broken, "ServiceMonitor")["spec"]["endpoints"][0]["scrapeInterval"] = "30s"
    with pytest.raises(jsonschema.ValidationError, match="scrapeInterval"):
        check_schemas(broken)


# --- promtool -----------------------------------------------------------------------------------


def _write_rules(tmp_path: Path, *, annotations: bool, edit=lambda expr: expr) -> Path:
    """The PrometheusRule's spec as a plain Prometheus rule file (what promtool reads)."""
    spec = copy.deepcopy(rule_object()["spec"])
    for group in spec["groups"]:
        for rule in group["rules"]:
            rule["expr"] = edit(rule["expr"])
            if not annotations:
                rule.pop("annotations", None)
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump(spec, width=1000))
    return path


def test_promtool_check_rules(tmp_path: Path) -> None:
    """Full PromQL syntax and the annotations' templates."""
    promtool = require_tool("promtool")
    proc = run_tool([promtool, "check", "rules", str(_write_rules(tmp_path, annotations=True))])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"SUCCESS: {len(rules(rule_object()))} rules found" in proc.stdout


def test_promtool_alert_unit_tests(tmp_path: Path) -> None:
    """The alerts fire on the right series at the right time, and not on followers' numbers."""
    promtool = require_tool("promtool")
    _write_rules(tmp_path, annotations=False)
    shutil.copy(PROMTOOL_TESTS, tmp_path / PROMTOOL_TESTS.name)
    proc = run_tool([promtool, "test", "rules", PROMTOOL_TESTS.name], cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_promtool_unit_tests_catch_a_follower(tmp_path: Path) -> None:
    """The unit tests fail when an alert also reads followers' series."""
    promtool = require_tool("promtool")
    _write_rules(tmp_path, annotations=False, edit=lambda expr: expr.replace(
        'is_stream_leader="true"', 'is_stream_leader=~".*"'))
    shutil.copy(PROMTOOL_TESTS, tmp_path / PROMTOOL_TESTS.name)
    proc = run_tool([promtool, "test", "rules", PROMTOOL_TESTS.name], cwd=tmp_path)
    output = proc.stdout + proc.stderr  # promtool reports failures on stderr
    assert proc.returncode != 0 and "JetStreamStreamStorageHigh" in output, output


def test_promtool_parses_dashboard_queries(tmp_path: Path) -> None:
    """Each dashboard query, its variables filled in, parses as a recording rule."""
    promtool = require_tool("promtool")
    values = {"$__rate_interval": "2m", "$cluster": ".*", "$stream": ".*", "$consumer": ".*"}
    records = []
    for index, (_, expr) in enumerate(dashboard_queries(dashboard())):
        for variable, value in values.items():
            expr = expr.replace(variable, value)
        records.append({"record": f"dashboard:query_{index}", "expr": expr})
    path = tmp_path / "dashboard.rules.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": records}]}))
    proc = run_tool([promtool, "check", "rules", str(path)])
    assert proc.returncode == 0, proc.stdout + proc.stderr
