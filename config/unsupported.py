"""Keys nats-server knows but this server does not implement, per block, and why.

They are refused by name (`<key> is not supported by this server: <why>`) rather than ignored:
running without a feature the operator asked for, TLS above all, would be worse than not
starting. An empty reason prints no detail.
"""

from __future__ import annotations

_NO_OCSP = "OCSP stapling and peer checks are not implemented"
_NO_TLS_OPTION = "this TLS option is not implemented"
NO_JWT = "only operator mode with a memory resolver (resolver_preload) is implemented"
_NO_ROUTE_ACCOUNTS = "dedicated routes per account are not implemented"
_NO_TRACE = "message tracing is not implemented"
_NO_RESPONSE_THRESHOLD = "service response thresholds are not implemented"
NO_ENCRYPTION = "JetStream encryption at rest is not implemented"
_NO_LEAF = "leaf node connections are not implemented"
_NO_MAPPINGS = "subject mappings are not implemented"
_NO_PROFILER = "the Go profiler endpoint does not exist here"
_PLAIN_CLIENTS_ONLY = "only plain NATS client connections exist here"

TOP_LEVEL: dict[str, str] = {
    "allow_non_tls": "clients must use TLS when it is configured (the mixed mode is not "
                     "implemented)",
    "ocsp": _NO_OCSP,
    "ocsp_cache": _NO_OCSP,
    "leafnodes": _NO_LEAF,
    "leaf": _NO_LEAF,
    "gateway": "gateways (super-clusters) are not implemented",
    "mqtt": "MQTT clients are not implemented",
    "default_js_domain": "default JetStream domains per account are not implemented",
    "mappings": _NO_MAPPINGS,
    "maps": _NO_MAPPINGS,
    "trusted": NO_JWT,
    "trusted_keys": NO_JWT,
    "resolver_tls": NO_JWT,
    "resolver_pinned_accounts": NO_JWT,
    "default_sentinel": NO_JWT,
    "prof_port": _NO_PROFILER,
    "prof_block_rate": _NO_PROFILER,
    "trace_headers": "",
    "max_traced_msg_len": "",
    "logfile_max_num": "",
    "log_max_num": "",
    "connect_error_reports": "",
    "reconnect_error_reports": "",
    "max_closed_clients": "",
    "write_timeout": "",
    "no_fast_producer_stall": "",
    "proxy_protocol": "",
    "proxies": "",
    "feature_flags": "",
}

AUTHORIZATION: dict[str, str] = {
    "auth_callout": "",
    "auth_hook": "",
    "proxy_required": "",
}

USER: dict[str, str] = {
    "allowed_connection_types": _PLAIN_CLIENTS_ONLY,
    "connection_types": _PLAIN_CLIENTS_ONLY,
    "clients": _PLAIN_CLIENTS_ONLY,
    "proxy_required": "",
}

# Keys of nats-server's tls { } block we do not implement.
TLS: dict[str, str] = {
    "verify_cert_and_check_known_urls": "mapping certificate subjects to users is not "
                                        "implemented",
    "insecure": "skipping certificate verification is not implemented",
    "allow_insecure_cipher_suites": _NO_TLS_OPTION,
    "curve_preferences": _NO_TLS_OPTION,
    "connection_rate_limit": _NO_TLS_OPTION,
    "pinned_certs": _NO_TLS_OPTION,
    "cert_store": "the Windows certificate store does not exist here",
    "cert_match_by": "the Windows certificate store does not exist here",
    "cert_match": "the Windows certificate store does not exist here",
    "ca_certs_match": "the Windows certificate store does not exist here",
    "cert_match_skip_invalid": "the Windows certificate store does not exist here",
    "ocsp_peer": _NO_OCSP,
    "certs": "several certificates (SNI) are not implemented",
    "certificates": "several certificates (SNI) are not implemented",
}

_NO_WS_AUTH = "a separate authorization for WebSocket clients is not implemented (they use " \
              "the server's)"
WEBSOCKET: dict[str, str] = {
    "authorization": _NO_WS_AUTH,
    "authentication": _NO_WS_AUTH,
    "no_auth_user": _NO_WS_AUTH,
    "jwt_cookie": _NO_WS_AUTH,
    "user_cookie": _NO_WS_AUTH,
    "pass_cookie": _NO_WS_AUTH,
    "token_cookie": _NO_WS_AUTH,
    "headers": "extra HTTP headers on the upgrade response are not implemented",
    "advertise": "advertising WebSocket URLs to clients is not implemented",
    "ping_interval": "",
}

CLUSTER: dict[str, str] = {
    "permissions": "route permissions are not implemented",
    "accounts": _NO_ROUTE_ACCOUNTS,
    "connect_backoff": "",
    "ping_interval": "",
    "ping_max": "",
    "write_deadline": "",
    "write_timeout": "",
}

CLUSTER_COMPRESSION: dict[str, str] = {
    "rtt_thresholds": "",
}

JETSTREAM: dict[str, str] = {
    "key": NO_ENCRYPTION,
    "ek": NO_ENCRYPTION,
    "encryption_key": NO_ENCRYPTION,
    "prev_key": NO_ENCRYPTION,
    "prev_ek": NO_ENCRYPTION,
    "prev_encryption_key": NO_ENCRYPTION,
    "cipher": NO_ENCRYPTION,
    "tpm": NO_ENCRYPTION,
    "extension_hint": "",
    "max_outstanding_catchup": "",
    "max_buffered_size": "",
    "max_buffered_msgs": "",
    "request_queue_limit": "",
    "info_queue_limit": "",
    "meta_compact": "",
    "meta_compact_size": "",
    "meta_compact_sync": "",
    "max_concurrent_io": "",
}

# One account of `accounts { }`.
ACCOUNT: dict[str, str] = {
    "nkey": "account nkeys are not implemented (accounts are known by name)",
    "mappings": _NO_MAPPINGS,
    "maps": _NO_MAPPINGS,
    "limits": "per-account connection, subscription and payload limits are not implemented",
    "msg_trace": _NO_TRACE,
    "trace_dest": _NO_TRACE,
}

# An account's `jetstream { }` block.
ACCOUNT_JETSTREAM: dict[str, str] = {
    "cluster_traffic": "JetStream cluster traffic runs in the system account only",
}

# One entry of an account's `exports`.
EXPORT: dict[str, str] = {
    "latency": "service latency tracking is not implemented",
    "threshold": _NO_RESPONSE_THRESHOLD,
    "response_threshold": _NO_RESPONSE_THRESHOLD,
    "response_max_time": _NO_RESPONSE_THRESHOLD,
    "response_time": _NO_RESPONSE_THRESHOLD,
    "account_token_position": "exports bound to the importer's name in a subject token are "
                              "not implemented",
    "allow_trace": _NO_TRACE,
}

# One entry of an account's `imports`.
IMPORT: dict[str, str] = {
    "share": "sharing the requester's connection details with the service is not implemented",
    "allow_trace": _NO_TRACE,
}

JETSTREAM_LIMITS: dict[str, str] = {
    "batch": "",
}
