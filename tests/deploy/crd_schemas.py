"""JSON Schemas for the two Prometheus Operator objects of deploy/monitoring/.

kubernetes-validate bundles only the core Kubernetes schemas: given a ServiceMonitor or a
PrometheusRule it prints a warning and passes it unchecked, and it has no option to load a
CRD's schema. These are written from the operator's API reference (monitoring.coreos.com/v1),
covering the fields deploy/monitoring/ uses and their close neighbours, and strict like
`kubernetes-validate --strict`: any other field fails. A field added to the manifests must be
added here after checking it against the operator's documentation: that is the point.
"""

from __future__ import annotations

from typing import Any

# A Prometheus duration: 0, or numbers with units (30s, 1m30s, 1h, 500ms).
DURATION = {"type": "string", "pattern": r"^(0|([0-9]+(ms|s|m|h|d|w|y))+)$"}
STRING_MAP = {"type": "object", "additionalProperties": {"type": "string"}}
DNS_SUBDOMAIN = {
    "type": "string",
    "maxLength": 253,
    "pattern": r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$",
}
METADATA = {
    "type": "object",
    "required": ["name"],
    "properties": {
        "name": DNS_SUBDOMAIN,
        "namespace": {"type": "string"},
        "labels": STRING_MAP,
        "annotations": STRING_MAP,
    },
    "additionalProperties": False,
}
LABEL_SELECTOR = {
    "type": "object",
    "properties": {
        "matchLabels": STRING_MAP,
        "matchExpressions": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["key", "operator"],
                "properties": {
                    "key": {"type": "string"},
                    "operator": {"enum": ["In", "NotIn", "Exists", "DoesNotExist"]},
                    "values": {"type": "array", "items": {"type": "string"}},
                },
                "additionalProperties": False,
            },
        },
    },
    "additionalProperties": False,
}
RELABEL_CONFIG = {
    "type": "object",
    "properties": {
        "sourceLabels": {"type": "array", "items": {"type": "string"}},
        "separator": {"type": "string"},
        "targetLabel": {"type": "string"},
        "regex": {"type": "string"},
        "modulus": {"type": "integer"},
        "replacement": {"type": "string"},
        "action": {"type": "string"},
    },
    "additionalProperties": False,
}


def _object(kind: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {
            "apiVersion": {"const": "monitoring.coreos.com/v1"},
            "kind": {"const": kind},
            "metadata": METADATA,
            "spec": spec,
        },
        "additionalProperties": False,
    }


SERVICE_MONITOR = _object("ServiceMonitor", {
    "type": "object",
    "required": ["selector", "endpoints"],
    "properties": {
        "selector": LABEL_SELECTOR,
        "namespaceSelector": {
            "type": "object",
            "properties": {
                "any": {"type": "boolean"},
                "matchNames": {"type": "array", "items": {"type": "string"}},
            },
            "additionalProperties": False,
        },
        "jobLabel": {"type": "string"},
        "targetLabels": {"type": "array", "items": {"type": "string"}},
        "podTargetLabels": {"type": "array", "items": {"type": "string"}},
        "sampleLimit": {"type": "integer", "minimum": 0},
        "endpoints": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "properties": {
                    "port": {"type": "string"},
                    "targetPort": {"type": ["integer", "string"]},
                    "path": {"type": "string", "pattern": "^/"},
                    "scheme": {"enum": ["http", "https"]},
                    "params": {"type": "object",
                               "additionalProperties": {"type": "array",
                                                        "items": {"type": "string"}}},
                    "interval": DURATION,
                    "scrapeTimeout": DURATION,
                    "honorLabels": {"type": "boolean"},
                    "honorTimestamps": {"type": "boolean"},
                    "followRedirects": {"type": "boolean"},
                    "enableHttp2": {"type": "boolean"},
                    "relabelings": {"type": "array", "items": RELABEL_CONFIG},
                    "metricRelabelings": {"type": "array", "items": RELABEL_CONFIG},
                },
                "additionalProperties": False,
            },
        },
    },
    "additionalProperties": False,
})

RULE = {
    "type": "object",
    "required": ["expr"],
    "properties": {
        "alert": {"type": "string", "minLength": 1},
        "record": {"type": "string", "minLength": 1},
        "expr": {"type": ["string", "integer"]},
        "for": DURATION,
        "keep_firing_for": DURATION,
        "labels": STRING_MAP,
        "annotations": STRING_MAP,
    },
    # Exactly one of alert and record.
    "oneOf": [{"required": ["alert"]}, {"required": ["record"]}],
    "additionalProperties": False,
}

PROMETHEUS_RULE = _object("PrometheusRule", {
    "type": "object",
    "properties": {
        "groups": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["name"],
                "properties": {
                    "name": {"type": "string", "minLength": 1},
                    "interval": DURATION,
                    "limit": {"type": "integer"},
                    "labels": STRING_MAP,
                    "rules": {"type": "array", "items": RULE},
                },
                "additionalProperties": False,
            },
        },
    },
    "additionalProperties": False,
})

SCHEMAS = {"ServiceMonitor": SERVICE_MONITOR, "PrometheusRule": PROMETHEUS_RULE}
