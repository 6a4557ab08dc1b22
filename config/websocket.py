"""The `websocket { }` block: the WebSocket listener for NATS clients (nats.ws, nats-py ws://).

What nats-server's block also takes and we do not implement (its own authorization, JWT and
user cookies, extra headers, advertise) is refused by name (`unsupported.WEBSOCKET`).
"""

from __future__ import annotations

from urllib.parse import urlsplit

from config import unsupported
from config.options import WebSocketOptions
from config.table import BOOL, DURATION, HOST_PORT, PORT, STRING, STRINGS, Key, Section
from config.tls import read_tls
from config.values import Field


def _apply_tls(websocket: WebSocketOptions, field: Field) -> None:
    websocket.tls = read_tls(field, websocket.tls, clients=False)


def _check_origins(field: Field, origins: list[str]) -> list[str]:
    """Absolute http(s) URLs with a host, as nats-server requires of allowed_origins."""
    for origin in origins:
        parts = urlsplit(origin)
        if parts.scheme not in ("http", "https"):
            raise field.error(f"unable to parse allowed origin {origin!r}: allowed origins must "
                              "be absolute URLs with http or https scheme")
        if not parts.hostname:
            raise field.error(f"unable to parse allowed origin {origin!r}: host is required")
    return origins


WEBSOCKET = Section(
    WebSocketOptions,
    (
        Key("listen", HOST_PORT, ("host", "port")),
        Key("host", STRING, "host", aliases=("net",)),
        Key("port", PORT, "port"),
        Key("no_tls", BOOL, "no_tls"),
        Key("tls", apply=_apply_tls),
        Key("same_origin", BOOL, "same_origin"),
        Key("allowed_origins", STRINGS, "allowed_origins",
            aliases=("allowed_origin", "allow_origins", "allow_origin", "origins", "origin"),
            refine=_check_origins),
        Key("handshake_timeout", DURATION, "handshake_timeout", zero_is_default=True),
        Key("compression", BOOL, "compression", aliases=("compress",)),
    ),
    unsupported.WEBSOCKET,
)
