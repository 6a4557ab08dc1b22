"""Keys nats-server knows but this server does not implement, per block, and why.

They are refused by name (`<key> is not supported by this server: <why>`) rather than ignored:
running without a feature the operator asked for, TLS above all, would be worse than not
starting. An empty reason prints no detail.
"""

from __future__ import annotations

_NO_OCSP = "OCSP stapling and peer checks are not implemented"
_NO_TLS_OPTION = "this TLS option is not implemented"
NO_JWT = "operator/JWT (decentralized) authentication is not implemented"
NO_ACCOUNTS = "there is a single account; multi-account setups are not implemented"
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
    "accounts": NO_ACCOUNTS,
    "system_account": NO_ACCOUNTS,
    "system": NO_ACCOUNTS,
    "default_js_domain": NO_ACCOUNTS,
    "mappings": _NO_MAPPINGS,
    "maps": _NO_MAPPINGS,
    "operator": NO_JWT,
    "operators": NO_JWT,
    "root": NO_JWT,
    "roots": NO_JWT,
    "root_operator": NO_JWT,
    "root_operators": NO_JWT,
    "trusted": NO_JWT,
    "trusted_keys": NO_JWT,
    "resolver": NO_JWT,
    "account_resolver": NO_JWT,
    "accounts_resolver": NO_JWT,
    "resolver_tls": NO_JWT,
    "resolver_preload": NO_JWT,
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
    "account": NO_ACCOUNTS,
}

# Keys of nats-server's tls { } block we do not implement.
TLS: dict[str, str] = {
    "verify_and_map": "mapping certificate subjects to users is not implemented",
    "verify_cert_and_check_known_urls": "mapping certificate subjects to users is not "
                                        "implemented",
    "insecure": "skipping certificate verification is not implemented",
    "cipher_suites": "Go cipher suite names are not mapped to OpenSSL's; the defaults of "
                     "Python's ssl module are used",
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
    "accounts": NO_ACCOUNTS,
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

JETSTREAM_LIMITS: dict[str, str] = {
    "batch": "",
}
