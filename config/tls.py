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

# Go's names of the cipher suites nats-server accepts by default (crypto/tls CipherSuites()),
# with OpenSSL's name of each TLS 1.2 suite. TLS 1.3 suites cannot be chosen (neither in Go nor
# in Python's ssl): they are accepted and have no effect, as in nats-server.
CIPHER_SUITES: dict[str, str | None] = {
    "TLS_AES_128_GCM_SHA256": None,
    "TLS_AES_256_GCM_SHA384": None,
    "TLS_CHACHA20_POLY1305_SHA256": None,
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256": "ECDHE-ECDSA-AES128-GCM-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256": "ECDHE-RSA-AES128-GCM-SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384": "ECDHE-ECDSA-AES256-GCM-SHA384",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384": "ECDHE-RSA-AES256-GCM-SHA384",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-ECDSA-CHACHA20-POLY1305",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-RSA-CHACHA20-POLY1305",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA": "ECDHE-ECDSA-AES128-SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA": "ECDHE-RSA-AES128-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA": "ECDHE-ECDSA-AES256-SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA": "ECDHE-RSA-AES256-SHA",
}
# Go's insecure suites (InsecureCipherSuites()): known to nats-server, refused here by name.
INSECURE_CIPHER_SUITES = frozenset({
    "TLS_RSA_WITH_RC4_128_SHA", "TLS_RSA_WITH_3DES_EDE_CBC_SHA", "TLS_RSA_WITH_AES_128_CBC_SHA",
    "TLS_RSA_WITH_AES_256_CBC_SHA", "TLS_RSA_WITH_AES_128_CBC_SHA256",
    "TLS_RSA_WITH_AES_128_GCM_SHA256", "TLS_RSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_ECDSA_WITH_RC4_128_SHA", "TLS_ECDHE_RSA_WITH_RC4_128_SHA",
    "TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA", "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256",
})


def apply_tls(options: Options, field: Field) -> None:
    """A `tls { }` block: TLS on the client port. The certificate and key are required."""
    options.tls = read_tls(field, options.tls)


def apply_cluster_tls(cluster: ClusterOptions, field: Field) -> None:
    """`cluster { tls { } }`: the routes' TLS (handshake_first does not apply: routes always
    start with the handshake)."""
    cluster.tls = read_tls(field, cluster.tls, clients=False)


def read_tls(field: Field, current: TLSOptions | None, clients: bool = True) -> TLSOptions:
    """A `tls { }` block; `clients`: the block of a port clients use (where a certificate can
    name the user: verify_and_map)."""
    tls = current or TLSOptions()
    apply_section(field, TLS, tls)
    for name in ("cert_file", "key_file"):
        if not getattr(tls, name):
            raise field.error(f"missing '{name}' in TLS configuration")
    if tls.verify_and_map and not clients:
        raise field.error("verify_and_map is not supported by this server in this block: "
                          "certificates name users of the client port only")
    tls.verify = tls.verify or tls.verify_and_map  # a certificate is required to name the user
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


def _read_cipher_suites(field: Field) -> list[str]:
    names = field.value
    if not isinstance(names, list):
        raise expected(field, "an array of cipher suite names")
    if not names:
        raise field.error("error parsing tls config, 'cipher_suites' cannot be empty")
    suites = []
    for index, node in enumerate(names):
        item = field.item(index, node)
        name = item.value
        if not isinstance(name, str):
            raise expected(item, "a cipher suite name")
        if name in INSECURE_CIPHER_SUITES:
            raise item.error(f"cipher suite {name} is not supported by this server: insecure "
                             "cipher suites are not implemented")
        if name not in CIPHER_SUITES:
            raise item.error(f"unrecognized cipher {name}")
        suites.append(name)
    return suites


TIMEOUT = Kind("number of seconds or duration", _read_timeout)
CIPHERS = Kind("array of cipher suite names", _read_cipher_suites)
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
        Key("cipher_suites", CIPHERS, "cipher_suites"),
        Key("verify_and_map", BOOL, "verify_and_map"),
    ),
    unsupported.TLS,
)
