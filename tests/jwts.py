"""NATS JWTs for tests, made when a test needs them (nothing checked in, nothing that expires in
the repository): operator, account and user keys, their JWTs encoded and signed the way nsc and
nats-io/jwt v2 do, ``.creds`` files, and the configuration of a server in operator mode.

The JSON is what Go's encoding/json writes for nats-io/jwt's structs: fields in struct order,
``omitempty`` fields left out when zero, struct fields (``pub``, ``sub``, ``limits``,
``default_permissions``, ``authorization``) always present, maps with sorted keys, and ``<``,
``>``, ``&`` escaped as ``\\u003c`` ... The ``jti`` is the unpadded base32 of the SHA-512/256 of
the registered claims without it, ``iat`` the time of encoding. So for the same keys, names and
``iat`` a JWT here is byte for byte the one nsc would make.

    op = operator_key(); sys = account_key(); acc = account_key(); user = user_key()
    op_jwt = operator_jwt(op, system_account=sys.public)
    accounts = {a.public: account_jwt(a, op) for a in (sys, acc)}
    conf = operator_config(op_jwt, sys.public, accounts)
    creds = write_creds(path, user_jwt(user.public, acc), user.seed)
"""

from __future__ import annotations

import base64
import hashlib
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import nacl.signing

from common import nkeys
from common.jwt import ALGORITHM, NO_LIMIT, b64encode

# -- keys -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Key:
    """An nkey pair: ``seed`` (S...) and ``public`` (O..., A..., U...)."""

    seed: str
    public: str

    def sign(self, data: bytes) -> bytes:
        found = nkeys.decode_seed(self.seed)
        assert found is not None
        return nacl.signing.SigningKey(found[1]).sign(data).signature


def key_from_seed(seed: str) -> Key:
    found = nkeys.decode_seed(seed)
    if found is None:
        raise ValueError("not an nkey seed")
    prefix, raw = found
    public = bytes(nacl.signing.SigningKey(raw).verify_key)
    return Key(seed, nkeys.encode_public(prefix, public))


def new_key(prefix: int) -> Key:
    return key_from_seed(nkeys.encode_seed(prefix, os.urandom(nkeys.KEY_LEN)))


def operator_key() -> Key:
    return new_key(nkeys.OPERATOR)


def account_key() -> Key:
    return new_key(nkeys.ACCOUNT)


def user_key() -> Key:
    return new_key(nkeys.USER)


# -- Go's encoding/json ---------------------------------------------------------------------

_SHORT_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t",
                  "\b": "\\b", "\f": "\\f"}


def _go_string(text: str) -> str:
    out = ['"']
    for ch in text:
        if ch in _SHORT_ESCAPES:
            out.append(_SHORT_ESCAPES[ch])
        elif ch < " " or ch in "<>&\u2028\u2029":
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def go_json(value: Any) -> str:
    """`value` as Go's json.Marshal writes it: compact, HTML-escaped, dicts in their order."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):  # only to make tokens of the wrong JSON type
        return repr(value)
    if isinstance(value, str):
        return _go_string(value)
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(go_json(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(f"{_go_string(k)}:{go_json(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"cannot encode {type(value).__name__}")


def _omitempty(pairs: Iterable[tuple[str, Any]]) -> dict[str, Any]:
    """The pairs whose value is not Go's empty value (0, False, "", empty list or map)."""
    return {k: v for k, v in pairs if v is not None and v is not False and v != 0
            and v != "" and v != () and v != [] and v != {}}


def _sorted_map(mapping: Mapping[str, Any]) -> dict[str, Any]:
    return {k: mapping[k] for k in sorted(mapping)}


# -- encoding ---------------------------------------------------------------------------------


def sign_token(claims: Mapping[str, Any], signer: Key, *, alg: str = ALGORITHM,
               claims_only: bool = False) -> str:
    """``header.claims.signature`` for `claims` as given; `claims_only` signs the claims part
    alone, as version 1 JWTs are."""
    header = b64encode(go_json({"typ": "JWT", "alg": alg}).encode())
    payload = b64encode(go_json(dict(claims)).encode())
    signed = payload if claims_only else f"{header}.{payload}"
    return f"{header}.{payload}.{b64encode(signer.sign(signed.encode()))}"


def claims(subject: str, nats: Mapping[str, Any], issuer: str, *, name: str = "",
           expires: int = 0, not_before: int = 0, audience: str = "",
           issued_at: int | None = None) -> dict[str, Any]:
    """The claims of a JWT of `nats` (the claim's ``nats`` object, ``type`` and ``version``
    included) about `subject`, issued by `issuer`, with its ``jti`` (jwt's doEncode)."""
    registered = _omitempty([
        ("aud", audience), ("exp", expires),
        ("iat", int(time.time()) if issued_at is None else issued_at),
        ("iss", issuer), ("name", name), ("nbf", not_before), ("sub", subject)])
    digest = hashlib.new("sha512_256", go_json(registered).encode()).digest()
    jti = base64.b32encode(digest).decode("ascii").rstrip("=")
    head = _omitempty([("aud", audience), ("exp", expires)])
    rest = {k: v for k, v in registered.items() if k not in head}
    return {**head, "jti": jti, **rest, "nats": dict(nats)}


def encode(subject: str, nats: Mapping[str, Any], signer: Key, *, alg: str = ALGORITHM,
           **registered: Any) -> str:
    """A JWT of `claims()` issued and signed by `signer`; `registered` are claims()'s name,
    expires, not_before, audience, issued_at."""
    return sign_token(claims(subject, nats, signer.public, **registered), signer, alg=alg)


# -- the claims' nats objects ------------------------------------------------------------------


def _generic(kind: str, tags: Sequence[str]) -> list[tuple[str, Any]]:
    return [("tags", list(tags)), ("type", kind), ("version", 2)]


def operator_jwt(key: Key, *, name: str = "operator", signing_keys: Sequence[str] = (),
                 system_account: str = "", account_server_url: str = "",
                 operator_service_urls: Sequence[str] = (), assert_server_version: str = "",
                 strict_signing_key_usage: bool = False, tags: Sequence[str] = (),
                 signer: Key | None = None, **registered: Any) -> str:
    """A self-signed operator JWT (or signed by `signer`, which the server refuses)."""
    nats = _omitempty([
        ("signing_keys", list(signing_keys)), ("account_server_url", account_server_url),
        ("operator_service_urls", list(operator_service_urls)),
        ("system_account", system_account), ("assert_server_version", assert_server_version),
        ("strict_signing_key_usage", strict_signing_key_usage), *_generic("operator", tags)])
    return encode(key.public, nats, signer or key, name=name, **registered)


LIMIT_KEYS = ("subs", "data", "payload", "imports", "exports", "wildcards", "disallow_bearer",
              "conn", "leaf", "mem_storage", "disk_storage", "streams", "consumer",
              "max_ack_pending", "mem_max_stream_bytes", "disk_max_stream_bytes",
              "max_bytes_required")
#: nsc's new account: no limits, wildcard exports allowed, JetStream disabled (zeros).
DEFAULT_ACCOUNT_LIMITS = {"subs": NO_LIMIT, "data": NO_LIMIT, "payload": NO_LIMIT,
                          "imports": NO_LIMIT, "exports": NO_LIMIT, "wildcards": True,
                          "conn": NO_LIMIT, "leaf": NO_LIMIT}
JETSTREAM_KEYS = LIMIT_KEYS[9:]


def account_limits(tiered_limits: Mapping[str, Mapping[str, Any]] | None = None,
                   **limits: Any) -> dict[str, Any]:
    """An account's ``limits``: nsc's defaults with `limits` (``conn=2``, ``mem_storage=-1``...)
    changed, and JetStream tiers (``{"R1": {"mem_storage": -1, ...}}``)."""
    unknown = set(limits) - set(LIMIT_KEYS)
    if unknown:
        raise ValueError(f"unknown limits {sorted(unknown)}")
    merged = {**DEFAULT_ACCOUNT_LIMITS, **limits}
    tiers = {name: _omitempty((k, tier.get(k, 0)) for k in JETSTREAM_KEYS)
             for name, tier in (tiered_limits or {}).items()}
    return _omitempty([*((k, merged.get(k, 0)) for k in LIMIT_KEYS),
                       ("tiered_limits", _sorted_map(tiers))])


def _permission(allow: Sequence[str], deny: Sequence[str]) -> dict[str, Any]:
    return _omitempty([("allow", list(allow)), ("deny", list(deny))])


def user_permission_limits(*, pub_allow: Sequence[str] = (), pub_deny: Sequence[str] = (),
                           sub_allow: Sequence[str] = (), sub_deny: Sequence[str] = (),
                           resp: tuple[int, int] | None = None, src: Sequence[str] = (),
                           times: Sequence[tuple[str, str]] = (), times_location: str = "",
                           subs: int = NO_LIMIT, data: int = NO_LIMIT, payload: int = NO_LIMIT,
                           bearer_token: bool = False, proxy_required: bool = False,
                           allowed_connection_types: Sequence[str] = ()) -> dict[str, Any]:
    """jwt.UserPermissionLimits as JSON (a user's, or a scope's template); `resp` is
    (max messages, ttl in nanoseconds), `times` (start, end) pairs."""
    out: dict[str, Any] = {"pub": _permission(pub_allow, pub_deny),
                           "sub": _permission(sub_allow, sub_deny)}
    if resp is not None:
        out["resp"] = {"max": resp[0], "ttl": resp[1]}
    out.update(_omitempty([
        ("src", list(src)),
        ("times", [_omitempty([("start", s), ("end", e)]) for s, e in times]),
        ("times_location", times_location), ("subs", subs), ("data", data),
        ("payload", payload), ("bearer_token", bearer_token),
        ("proxy_required", proxy_required),
        ("allowed_connection_types", list(allowed_connection_types))]))
    return out


def scope(key: str, *, role: str = "", description: str = "",
          template: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A scoped signing key entry of an account's ``signing_keys`` (jwt.UserScope)."""
    return {"kind": "user_scope", "key": key, "role": role,
            "template": dict(template if template is not None else user_permission_limits()),
            "description": description}


def export(subject: str, type: str = "stream", *, name: str = "", token_req: bool = False,
           response_type: str = "", account_token_position: int = 0, advertise: bool = False,
           description: str = "") -> dict[str, Any]:
    return _omitempty([
        ("name", name), ("subject", subject), ("type", type), ("token_req", token_req),
        ("response_type", response_type), ("account_token_position", account_token_position),
        ("advertise", advertise), ("description", description)])


def import_(subject: str, account: str, type: str = "stream", *, name: str = "",
            token: str = "", local_subject: str = "", share: bool = False) -> dict[str, Any]:
    return _omitempty([
        ("name", name), ("subject", subject), ("account", account), ("token", token),
        ("local_subject", local_subject), ("type", type), ("share", share)])


def account_jwt(key: Key | str, signer: Key, *, name: str = "account",
                limits: Mapping[str, Any] | None = None,
                signing_keys: Iterable[str | Mapping[str, Any]] = (),
                revocations: Mapping[str, int] | None = None,
                exports: Sequence[Mapping[str, Any]] = (),
                imports: Sequence[Mapping[str, Any]] = (),
                default_permissions: Mapping[str, Any] | None = None,
                description: str = "", tags: Sequence[str] = (), **registered: Any) -> str:
    """An account JWT signed by `signer` (its operator). `limits` is an `account_limits()`;
    `signing_keys` holds public keys and `scope()` entries; `revocations` maps user keys (or
    ``*``) to Unix seconds."""
    public = key if isinstance(key, str) else key.public
    keys = {(k if isinstance(k, str) else k["key"]): k for k in signing_keys}
    nats: dict[str, Any] = _omitempty([
        ("imports", sorted((dict(i) for i in imports), key=lambda i: i.get("subject", ""))),
        ("exports", sorted((dict(e) for e in exports), key=lambda e: e.get("subject", "")))])
    nats["limits"] = dict(limits if limits is not None else account_limits())
    nats.update(_omitempty([("signing_keys", [keys[k] for k in sorted(keys)]),
                            ("revocations", _sorted_map(revocations or {}))]))
    nats["default_permissions"] = dict(default_permissions or {"pub": {}, "sub": {}})
    nats["authorization"] = {}
    nats.update(_omitempty([("description", description), *_generic("account", tags)]))
    return encode(public, nats, signer, name=name, **registered)


def user_jwt(subject: str, signer: Key, *, name: str = "user", issuer_account: str = "",
             scoped: bool = False, tags: Sequence[str] = (),
             permissions: Mapping[str, Any] | None = None, **registered: Any) -> str:
    """A user JWT for the public key `subject`, signed by its account or by one of the
    account's signing keys (then give `issuer_account`). `permissions` is a
    `user_permission_limits()` (default: unlimited); `scoped` leaves them all out, as a user of
    a scoped signing key must (jwt's SetScoped)."""
    if scoped:
        body: dict[str, Any] = {"pub": {}, "sub": {}}
    else:
        body = dict(permissions if permissions is not None else user_permission_limits())
    nats = {**body, **_omitempty([("issuer_account", issuer_account),
                                  *_generic("user", tags)])}
    return encode(subject, nats, signer, name=name, **registered)


# -- files --------------------------------------------------------------------------------------


def creds_text(user_jwt: str, seed: str) -> str:
    """A ``.creds`` file as nsc writes it (jwt.FormatUserConfig)."""
    kind = {"SU": "USER", "SA": "ACCOUNT", "SO": "OPERATOR"}[seed[:2]]
    return (f"-----BEGIN NATS USER JWT-----\n{user_jwt}\n------END NATS USER JWT------\n\n"
            "************************* IMPORTANT *************************\n"
            "NKEY Seed printed below can be used to sign and prove identity.\n"
            "NKEYs are sensitive and should be treated as secrets.\n\n"
            f"-----BEGIN {kind} NKEY SEED-----\n{seed}\n------END {kind} NKEY SEED------\n\n"
            "*************************************************************\n")


def write_creds(path: str | os.PathLike[str], user_jwt: str, seed: str) -> str:
    with open(path, "w") as f:
        f.write(creds_text(user_jwt, seed))
    os.chmod(path, 0o600)
    return os.fspath(path)


def operator_config(operator: str, system_account: str, accounts: Mapping[str, str],
                    extra: str = "") -> str:
    """A server configuration for operator mode: `operator` is the operator JWT or a file
    holding it, `accounts` maps account public keys to their JWTs, preloaded in a memory
    resolver."""
    preload = "".join(f"  {public}: {go_json(token)}\n" for public, token in accounts.items())
    return (f"operator: {go_json(operator)}\n"
            f"system_account: {system_account}\n"
            "resolver: MEMORY\n"
            f"resolver_preload: {{\n{preload}}}\n"
            f"{extra}")


def write_operator_config(path: str | os.PathLike[str], operator: str, system_account: str,
                          accounts: Mapping[str, str], extra: str = "") -> str:
    with open(path, "w") as f:
        f.write(operator_config(operator, system_account, accounts, extra))
    return os.fspath(path)
