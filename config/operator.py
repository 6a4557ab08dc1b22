"""Operator mode (decentralized auth with JWTs): `operator`, `resolver`, `resolver_preload`.

The operator JWT comes from a file (as `nsc` leaves it, decorated or not) or inline; accounts
are preloaded JWTs in a memory resolver, keyed by their public key. Here the JWTs are decoded
and their signatures checked (common.jwt); whether an operator trusts an account, and who may
connect, is the broker's to decide (broker/operator.py), as nats-server decides it at lookup.
Only the memory resolver exists: a URL or nats-based (`full` / `cache`) resolver is refused.
"""

from __future__ import annotations

import re

from common import jwt
from common.jwt import JwtError
from config.options import Options
from config.table import Kind
from config.values import Field

JWT_PREFIX = "eyJ"  # every JWT's header starts so (base64 of `{"`)
_MEMORY = re.compile(r"(?i)(MEM|MEMORY)\s*")
_URL = re.compile(r"(?i)URL")


def apply_operators(options: Options, field: Field) -> None:
    """`operator: <file or JWT>` or a list of them."""
    value = field.value
    names = value if isinstance(value, list) else [value]
    operators = []
    for index, name in enumerate(names):
        item = field.item(index, name) if isinstance(value, list) else field
        if not isinstance(item.value, str):
            raise item.error(f"error parsing operators: unsupported type {_kind(item.value)}")
        operators.append(_read_operator(item, item.value))
    options.operators = operators


def _read_operator(field: Field, name: str) -> jwt.OperatorClaims:
    try:
        with open(name) as f:
            text = f.read()
    except OSError as exc:
        if not name.startswith(JWT_PREFIX):
            raise field.error(f"error parsing operator JWT: open {name}: "
                              f"{exc.strerror.lower() if exc.strerror else exc}") from None
        text = name
    try:
        return jwt.decode_operator(jwt.parse_decorated_jwt(text))
    except JwtError as exc:
        raise field.error(f"error parsing operator JWT: {exc}") from None


def _read_resolver(field: Field) -> str:
    value = field.value
    if isinstance(value, str) and _MEMORY.match(value):
        return "MEMORY"
    if isinstance(value, str) and _URL.match(value):
        raise field.error("resolver is not supported by this server: the URL account "
                          "resolver is not implemented (use MEMORY with resolver_preload)")
    if isinstance(value, dict):
        raise field.error("resolver is not supported by this server: the nats based account "
                          "resolver (full / cache) is not implemented (use MEMORY with "
                          "resolver_preload)")
    raise field.error(f"resolver: expected MEMORY, got {value!r}")


def _read_preload(field: Field) -> dict[str, str]:
    if not isinstance(field.value, dict):
        raise field.error("preload should be a map of account_public_key:account_jwt")
    preload: dict[str, str] = {}
    for key, node in field.value.items():
        entry = field.child(key, node)
        if not isinstance(entry.value, str):
            raise entry.error("preload map value should be a string JWT")
        try:
            jwt.decode_account(entry.value)
        except JwtError:
            raise entry.error("invalid account JWT") from None
        preload[key] = entry.value
    return preload


def _kind(value: object) -> str:
    return {bool: "bool", int: "int64", float: "float64", dict: "map"}.get(type(value), "value")


RESOLVER = Kind("MEMORY", _read_resolver)
PRELOAD = Kind("map of account public keys to account JWTs", _read_preload)


def check_operator_mode(options: Options, top: Field, system_field: Field) -> None:
    """nats-server's validateTrustedOperators, on what this server supports. `system_field`:
    where `system_account` is set (`top` when it is not)."""
    if not options.operators:
        return
    if not options.resolver:
        raise top.error("operators require an account resolver to be configured")
    if options.accounts:
        raise top.error("operators do not allow Accounts to be configured directly")
    if options.users or options.username or options.authorization:
        raise top.error("operators do not allow users to be configured directly")
    declared = {op.system_account for op in options.operators if op.system_account}
    if system_field is not top:
        if declared and options.system_account not in declared:
            raise system_field.error("system_account in config and operator JWT must be "
                                     "identical")
    elif options.operators[0].system_account:
        options.system_account = options.operators[0].system_account
