"""The `tls { }` block of the client port: certificate, key, CA, client verification, timeout,
TLS before INFO, the lowest version. What nats-server's block also takes and we do not
implement is refused by name (`unsupported.TLS`)."""

from __future__ import annotations

import os

from config import unsupported
from config.options import DEFAULT_TLS_TIMEOUT, ClusterOptions, Options, TLSOptions
from config.table import BOOL, STRING, Key, Kind, Section, apply_section
from config.values import Field, expected, read_duration

TLS_VERSIONS = ("1.2", "1.3")


def apply_tls(options: Options, field: Field) -> None:
    """A `tls { }` block: TLS on the client port. The certificate and key are required."""
    options.tls = read_tls(field, options.tls)


def apply_cluster_tls(cluster: ClusterOptions, field: Field) -> None:
    """`cluster { tls { } }`: the routes' TLS (handshake_first does not apply: routes always
    start with the handshake)."""
    cluster.tls = read_tls(field, cluster.tls)


def read_tls(field: Field, current: TLSOptions | None) -> TLSOptions:
    tls = current or TLSOptions()
    apply_section(field, TLS, tls)
    for name in ("cert_file", "key_file"):
        if not getattr(tls, name):
            raise field.error(f"missing '{name}' in TLS configuration")
    return tls


def _readable(field: Field, path: str) -> str:
    """A file the server will read at start: refused now, with its line, if it cannot be."""
    if not os.path.isfile(path) or not os.access(path, os.R_OK):
        raise field.error(f"error opening {field.name} {path!r}: no such readable file")
    return path


def _read_timeout(field: Field) -> float:
    """Seconds as a number, or a duration string (nats-server takes both)."""
    value = field.value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str):
        seconds = read_duration(field)
    else:
        raise field.error("error parsing tls config, 'timeout' wrong type")
    return seconds if seconds > 0 else DEFAULT_TLS_TIMEOUT


def _read_min_version(field: Field) -> str:
    value = field.value
    if not isinstance(value, str):
        raise expected(field, "a TLS version string")
    version = value.strip()
    if version not in TLS_VERSIONS:
        raise field.error(f"unsupported TLS version {value!r}: use one of 1.2, 1.3")
    return version


def _read_handshake_first(field: Field) -> bool:
    """true/false (or on/off); nats-server's "auto" fallback duration is not implemented."""
    value = field.value
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "on", "false", "off"):
        return value.lower() in ("true", "on")
    raise field.error(f"handshake_first {value!r} is not supported by this server: only true or "
                      "false (the delayed fallback to plain connections is not implemented)")


TIMEOUT = Kind("number of seconds or duration", _read_timeout)
VERSION = Kind("TLS version", _read_min_version)
HANDSHAKE_FIRST = Kind("boolean", _read_handshake_first)

TLS = Section(
    TLSOptions,
    (
        Key("cert_file", STRING, "cert_file", refine=_readable),
        Key("key_file", STRING, "key_file", refine=_readable),
        Key("ca_file", STRING, "ca_file", refine=_readable),
        Key("verify", BOOL, "verify"),
        Key("timeout", TIMEOUT, "timeout"),
        Key("handshake_first", HANDSHAKE_FIRST, "handshake_first", aliases=("first",
                                                                           "immediate")),
        Key("min_version", VERSION, "min_version"),
    ),
    unsupported.TLS,
)
