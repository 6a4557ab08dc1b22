"""NATS JWTs (nats-io/jwt v2) as nats-server reads them in operator mode: decode, verify the
ed25519 signature of the issuer, check the times, and the typed claims the server acts on.

A token is ``header.claims.signature``, each base64url without padding. The header is
``{"typ":"JWT","alg":"ed25519-nkey"}`` (``typ`` in any case; ``alg`` in any case, also the
older ``ed25519``). The claims are JSON: the registered claims (``jti iat iss sub name exp nbf
aud``) and a ``nats`` object holding ``type`` (operator, account, user...), ``version`` (2) and
the type's fields. A version 1 JWT (written by the first nats-io/jwt) has ``type`` at the top
level instead, and its signature covers the claims part only; version 2 signs ``header.claims``.
As in jwt.Decode, the claims decide which, not the header's ``alg``.

`decode` checks the form, the signature (against the public nkey in ``iss``) and that the issuer
is of a kind allowed to sign the claim type (an operator signs operators; an operator or an
account signs accounts; an account or its signing key signs users). It does not decide whether
the issuer is trusted: that is the server's (its operators, the account's signing keys). Times
are checked only when a clock is given (``now``, Unix seconds), as ``Validate`` does: expired
once ``now > exp``, not yet valid while ``nbf > now`` (0 means unset).

Durations are Go's integer nanoseconds (``resp.ttl``, ``response_threshold``). Lists are tuples,
maps are dicts; a field absent from the JSON takes Go's zero value, except where nats-io/jwt
presets one (``-1`` for the subs/data/payload of a version 1 user and of a scope's template).
Go matches JSON keys case-insensitively; this module matches them exactly.

Every failure is a `JwtError`, whose ``reason`` is one of the ``REASON_*`` texts.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import json
import math
import re
import zoneinfo
from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace
from typing import Any, TypeVar

import nacl.exceptions
import nacl.signing

from common import nkeys

TOKEN_TYPE = "JWT"
ALGORITHM = "ed25519-nkey"
ALGORITHM_V1 = "ed25519"
LIB_VERSION = 2
MAX_TOKEN_SIZE = 1024 * 1024
NO_LIMIT = -1
ALL = "*"  # a revocation of every key

OPERATOR_CLAIM = "operator"
ACCOUNT_CLAIM = "account"
USER_CLAIM = "user"
ACTIVATION_CLAIM = "activation"
AUTHORIZATION_REQUEST_CLAIM = "authorization_request"
AUTHORIZATION_RESPONSE_CLAIM = "authorization_response"
GENERIC_CLAIM = "generic"

CONNECTION_TYPES = ("STANDARD", "WEBSOCKET", "LEAFNODE", "LEAFNODE_WS", "MQTT", "MQTT_WS",
                    "IN_PROCESS")

REASON_TOO_LARGE = "token too large"
REASON_MALFORMED = "malformed token"
REASON_HEADER = "unsupported header"
REASON_VERSION = "unsupported version"
REASON_CLAIM_TYPE = "unsupported claim type"
REASON_INVALID = "invalid claims"
REASON_SIGNATURE = "signature verification failed"
REASON_NOT_OPERATOR = "issuer is not an operator"
REASON_NOT_ACCOUNT = "issuer is not an account"
REASON_NOT_ACCOUNT_OR_OPERATOR = "issuer is not an account or operator"
REASON_EXPIRED = "expired"
REASON_NOT_YET_VALID = "not yet valid"
REASON_WRONG_TYPE = "wrong claim type"
REASON_NOT_SCOPED_SIGNER = "issuer not the scoped signer"
REASON_SCOPED_PERMISSIONS = "scoped users require no permissions or limits set"
REASON_CREDS = "invalid creds"

_INT64 = (-(1 << 63), (1 << 63) - 1)


class JwtError(ValueError):
    """A token, claim or creds file nats-server would refuse; ``reason`` is a REASON_* text."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


# -- claims ---------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Claims:
    """The registered claims every JWT has (jwt.ClaimsData) and the generic ``nats`` fields.

    Also what `decode` returns for a claim type without its own class (activation, the
    authorization callout's, or none); ``raw`` is the claims JSON as decoded."""

    subject: str = ""  # sub
    issuer: str = ""  # iss: the public nkey that signed
    issued_at: int = 0  # iat, Unix seconds
    expires: int = 0  # exp, Unix seconds; 0: never
    not_before: int = 0  # nbf, Unix seconds; 0: unset
    name: str = ""
    audience: str = ""  # aud
    jti: str = ""
    claim_type: str = ""  # nats.type (top-level type in version 1)
    version: int = 0  # 1 or 2 for the typed claims
    tags: tuple[str, ...] = ()
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def check_times(self, now: float) -> None:
        """Raise JwtError (expired / not yet valid) if the claim is not valid at `now`."""
        seconds = math.floor(now)
        if self.expires > 0 and seconds > self.expires:
            raise JwtError(REASON_EXPIRED, f"expired at {self.expires}")
        if self.not_before > 0 and self.not_before > seconds:
            raise JwtError(REASON_NOT_YET_VALID, f"valid from {self.not_before}")

    def is_self_signed(self) -> bool:
        return self.issuer == self.subject


@dataclass(frozen=True)
class Permission:
    """Subjects allowed and denied (``pub`` / ``sub``); a sub entry may be ``subject queue``."""

    allow: tuple[str, ...] = ()
    deny: tuple[str, ...] = ()


@dataclass(frozen=True)
class ResponsePermission:
    """``resp``: publish to up to ``max_msgs`` reply subjects received, for ``ttl_ns``."""

    max_msgs: int = 0
    ttl_ns: int = 0  # Go time.Duration, nanoseconds


@dataclass(frozen=True)
class Permissions:
    """An account's ``default_permissions``."""

    pub: Permission = Permission()
    sub: Permission = Permission()
    resp: ResponsePermission | None = None


@dataclass(frozen=True)
class TimeRange:
    """A daily window ``HH:MM:SS`` to ``HH:MM:SS`` (crossing midnight if start > end)."""

    start: str = ""
    end: str = ""


@dataclass(frozen=True, kw_only=True)
class UserPermissionLimits:
    """What a user may do (jwt.UserPermissionLimits): a user JWT's, or a scope's template."""

    pub: Permission = Permission()
    sub: Permission = Permission()
    resp: ResponsePermission | None = None
    src: tuple[str, ...] = ()  # CIDRs a client may connect from
    times: tuple[TimeRange, ...] = ()
    times_location: str = ""  # IANA zone of `times`; "" is the server's local time
    subs: int = 0  # -1: unlimited
    data: int = 0
    payload: int = 0
    bearer_token: bool = False  # no nonce signature needed
    proxy_required: bool = False
    allowed_connection_types: tuple[str, ...] = ()  # empty: all

    def is_empty(self) -> bool:
        return self == UserPermissionLimits()


@dataclass(frozen=True, kw_only=True)
class UserClaims(Claims):
    """A user JWT: ``sub`` the user's key, ``iss`` its account or one of the account's signing
    keys (then ``issuer_account`` names the account)."""

    permissions: UserPermissionLimits = UserPermissionLimits()
    issuer_account: str = ""

    @property
    def account(self) -> str:
        """The public key of the account the user belongs to."""
        return self.issuer_account or self.issuer

    def has_empty_permissions(self) -> bool:
        return self.permissions.is_empty()

    def validate(self) -> list[str]:
        """What jwt's UserClaims.Validate reports besides the times; the server refuses a user
        JWT with any of these."""
        issues: list[str] = []
        perms = self.permissions
        for subject in (*perms.sub.allow, *perms.sub.deny):
            _check_permission(issues, subject, permit_queue=True)
        for subject in (*perms.pub.allow, *perms.pub.deny):
            _check_permission(issues, subject, permit_queue=False)
        for cidr in perms.src:
            if not _valid_cidr(cidr):
                issues.append(f"invalid cidr {cidr!r} in user src limits")
        for window in perms.times:
            for what, value, missing in (
                    ("start", window.start, "time ranges start must contain a start"),
                    ("end", window.end, "time ranges end must contain an end")):
                if not value:
                    issues.append(missing)
                elif not _valid_clock(value):
                    issues.append(f"{what} in time range is invalid {value!r}")
        if perms.times_location and not _valid_zone(perms.times_location):
            issues.append(f"could not parse iana time zone by name: {perms.times_location}")
        if self.issuer_account and not nkeys.is_public_account_key(self.issuer_account):
            issues.append("account_id is not an account public key")
        return issues


@dataclass(frozen=True, kw_only=True)
class UserScope:
    """A scoped signing key of an account: users it signs get ``template``, not their own."""

    key: str = ""
    role: str = ""
    template: UserPermissionLimits = UserPermissionLimits(subs=NO_LIMIT, data=NO_LIMIT,
                                                          payload=NO_LIMIT)
    description: str = ""

    def check_signed(self, user: UserClaims) -> None:
        """Raise JwtError unless `user` is one this scope may sign (jwt's ValidateScopedSigner)."""
        if user.issuer != self.key:
            raise JwtError(REASON_NOT_SCOPED_SIGNER)
        if not user.has_empty_permissions():
            raise JwtError(REASON_SCOPED_PERMISSIONS)


@dataclass(frozen=True, kw_only=True)
class JetStreamLimits:
    """An account's JetStream limits (0 storage: JetStream disabled; -1: unlimited)."""

    mem_storage: int = 0
    disk_storage: int = 0
    streams: int = 0
    consumer: int = 0
    max_ack_pending: int = 0
    mem_max_stream_bytes: int = 0
    disk_max_stream_bytes: int = 0
    max_bytes_required: bool = False

    def is_enabled(self) -> bool:
        return self.mem_storage != 0 or self.disk_storage != 0


@dataclass(frozen=True, kw_only=True)
class OperatorLimits:
    """An account's ``limits`` (jwt.OperatorLimits; -1 is unlimited)."""

    subs: int = 0
    data: int = 0
    payload: int = 0
    imports: int = 0
    exports: int = 0
    wildcards: bool = False  # wildcard exports allowed
    disallow_bearer: bool = False
    conn: int = 0
    leaf: int = 0
    jetstream: JetStreamLimits = JetStreamLimits()  # the untiered limits (flat in the JSON)
    tiered_limits: dict[str, JetStreamLimits] = field(default_factory=dict)

    def is_jetstream_enabled(self) -> bool:
        if self.tiered_limits:
            return any(t.is_enabled() for t in self.tiered_limits.values())
        return self.jetstream.is_enabled()


@dataclass(frozen=True)
class ServiceLatency:
    sampling: int = 0  # percent 1..100; 0 is "headers"
    results: str = ""


@dataclass(frozen=True, kw_only=True)
class Export:
    name: str = ""
    subject: str = ""
    type: str = ""  # "stream", "service" or "" (unknown)
    token_req: bool = False
    revocations: dict[str, int] = field(default_factory=dict)
    response_type: str = ""  # Singleton (default), Stream, Chunked
    response_threshold_ns: int = 0
    latency: ServiceLatency | None = None  # service_latency
    account_token_position: int = 0
    advertise: bool = False
    allow_trace: bool = False
    description: str = ""
    info_url: str = ""


@dataclass(frozen=True, kw_only=True)
class Import:
    name: str = ""
    subject: str = ""
    account: str = ""
    token: str = ""  # an activation JWT
    to: str = ""  # deprecated for local_subject
    local_subject: str = ""
    type: str = ""  # "stream", "service" or ""
    share: bool = False
    allow_trace: bool = False


@dataclass(frozen=True)
class WeightedMapping:
    subject: str = ""
    weight: int = 0  # 0 means 100
    cluster: str = ""


@dataclass(frozen=True)
class ExternalAuthorization:
    """The account's authorization callout: ``auth_users`` bypass it."""

    auth_users: tuple[str, ...] = ()
    allowed_accounts: tuple[str, ...] = ()
    xkey: str = ""


@dataclass(frozen=True)
class MsgTrace:
    dest: str = ""
    sampling: int = 0


@dataclass(frozen=True, kw_only=True)
class AccountClaims(Claims):
    """An account JWT: ``sub`` the account's key, ``iss`` an operator (or the account itself)."""

    imports: tuple[Import, ...] = ()
    exports: tuple[Export, ...] = ()
    limits: OperatorLimits = field(default_factory=OperatorLimits)
    signing_keys: dict[str, UserScope | None] = field(default_factory=dict)  # None: unscoped
    revocations: dict[str, int] = field(default_factory=dict)  # user key or "*": Unix seconds
    default_permissions: Permissions = Permissions()
    mappings: dict[str, tuple[WeightedMapping, ...]] = field(default_factory=dict)
    authorization: ExternalAuthorization = ExternalAuthorization()
    trace: MsgTrace | None = None
    cluster_traffic: str = ""
    description: str = ""
    info_url: str = ""

    def did_sign(self, claims: Claims) -> bool:
        """True if this account or, for a user naming it in issuer_account, one of its signing
        keys issued `claims` (jwt's AccountClaims.DidSign, for users)."""
        if claims.issuer == self.subject:
            return True
        if isinstance(claims, UserClaims) and claims.issuer_account == self.subject:
            return claims.issuer in self.signing_keys
        return False

    def is_revoked(self, public_key: str, issued_at: int) -> bool:
        """True if JWTs of `public_key` issued at `issued_at` are revoked (the key's or the
        ``*`` entry is at or after the issue time), as nats-server checks users."""
        for key in (public_key, ALL):
            at = self.revocations.get(key)
            if at is not None and at >= issued_at:
                return True
        return False


@dataclass(frozen=True, kw_only=True)
class OperatorClaims(Claims):
    """An operator JWT: self-signed, ``sub`` the operator's key."""

    signing_keys: tuple[str, ...] = ()
    account_server_url: str = ""
    operator_service_urls: tuple[str, ...] = ()
    system_account: str = ""
    assert_server_version: str = ""
    strict_signing_key_usage: bool = False

    def trusted_keys(self) -> tuple[str, ...]:
        """The keys that may sign accounts for this operator, as the server expands them."""
        own = () if self.strict_signing_key_usage else (self.subject,)
        return (*own, *self.signing_keys)

    def did_sign(self, claims: Claims) -> bool:
        """True if this operator or one of its signing keys issued `claims`."""
        if claims.issuer == self.subject:
            return not self.strict_signing_key_usage or claims.subject == self.subject
        return claims.issuer in self.signing_keys


_C = TypeVar("_C", bound=Claims)
_D = TypeVar("_D")


# -- decoding ---------------------------------------------------------------------------------


def b64decode(text: str) -> bytes:
    """base64url without padding (Go's RawURLEncoding); JwtError if not that."""
    if not re.fullmatch(r"[A-Za-z0-9_-]*", text) or len(text) % 4 == 1:
        raise JwtError(REASON_MALFORMED, "invalid base64url")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise JwtError(REASON_MALFORMED, "invalid base64url") from exc


def b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def verify_signature(public_key: str, message: bytes, signature: bytes) -> bool:
    """True if `signature` is the ed25519 signature of `message` by the public nkey."""
    found = nkeys.decode_any_public(public_key)
    if found is None:
        return False
    try:
        nacl.signing.VerifyKey(found[1]).verify(message, signature)
    except (nacl.exceptions.BadSignatureError, ValueError, TypeError):
        return False
    return True


def signed_nonce(public_key: str, nonce: str, sig: object) -> bool:
    """True if `sig` (a CONNECT's `sig`: base64url, or standard base64, as nats-server takes
    both) is `public_key`'s signature of the `nonce` its INFO carried."""
    if not nonce or not isinstance(sig, str) or not sig:
        return False
    padded = sig + "=" * (-len(sig) % 4)
    for decode_text in (base64.urlsafe_b64decode, base64.b64decode):
        try:
            signature = decode_text(padded)
        except (binascii.Error, ValueError):
            continue
        return verify_signature(public_key, nonce.encode(), signature)
    return False


def decode(token: str, now: float | None = None) -> Claims:
    """The verified claims of `token` (jwt.Decode), times checked if `now` is given."""
    if not isinstance(token, str):
        raise JwtError(REASON_MALFORMED, "not a string")
    if len(token) > MAX_TOKEN_SIZE:
        raise JwtError(REASON_TOO_LARGE, f"token size {len(token)} exceeds {MAX_TOKEN_SIZE}")
    chunks = token.split(".")
    if len(chunks) != 3:
        raise JwtError(REASON_MALFORMED, "expected 3 chunks")
    _check_header(_json_object(b64decode(chunks[0]), "header"))
    data = _json_object(b64decode(chunks[1]), "claims")
    version, kind = _identify(data)
    claims = _load(kind, version, data)
    signature = b64decode(chunks[2])
    # jwt verifies a version 1 claim (and one of unknown type) over the claims part alone.
    signed = chunks[1] if claims.version <= 1 else token[:len(chunks[0]) + len(chunks[1]) + 1]
    if not verify_signature(claims.issuer, signed.encode("ascii"), signature):
        raise JwtError(REASON_SIGNATURE)
    _check_issuer_kind(claims)
    if now is not None:
        claims.check_times(now)
    return claims


def decode_operator(token: str, now: float | None = None) -> OperatorClaims:
    return _decode_as(token, now, OperatorClaims, OPERATOR_CLAIM)


def decode_account(token: str, now: float | None = None) -> AccountClaims:
    return _decode_as(token, now, AccountClaims, ACCOUNT_CLAIM)


def decode_user(token: str, now: float | None = None) -> UserClaims:
    return _decode_as(token, now, UserClaims, USER_CLAIM)


def _decode_as(token: str, now: float | None, cls: type[_C], kind: str) -> _C:
    claims = decode(token, now)
    if not isinstance(claims, cls):
        raise JwtError(REASON_WRONG_TYPE, f"expected {kind}, got {claims.claim_type or 'none'}")
    return claims


def _json_object(raw: bytes, what: str) -> dict[str, Any]:
    try:
        value = json.loads(raw.decode("utf-8", errors="replace"), parse_constant=_no_constant)
    except ValueError as exc:
        raise JwtError(REASON_MALFORMED, f"{what} is not JSON") from exc
    if not isinstance(value, dict):
        raise JwtError(REASON_MALFORMED, f"{what} is not a JSON object")
    return value


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")  # Go's decoder knows no NaN or Infinity


def _check_header(header: dict[str, Any]) -> None:
    fields = _Obj(header, "header")
    typ, alg = fields.text("typ"), fields.text("alg")
    if typ.upper() != TOKEN_TYPE:
        raise JwtError(REASON_HEADER, f"not supported type {typ!r}")
    if alg.lower() not in (ALGORITHM, ALGORITHM_V1):
        raise JwtError(REASON_HEADER, f"unexpected {alg!r} algorithm")


def _identify(data: dict[str, Any]) -> tuple[int, str]:
    """(version, claim type) as jwt's identifier reads them."""
    top = _Obj(data, "claims").text("type")
    nats = _Obj(data, "claims").obj("nats")
    if top:
        return 1, top
    kind, version = nats.text("type"), nats.integer("version")
    if version > LIB_VERSION:
        raise JwtError(REASON_VERSION, "JWT was generated by a newer version")
    return version, kind


def _load(kind: str, version: int, data: dict[str, Any]) -> Claims:
    loaders: dict[str, Callable[[dict[str, Any], int], Claims]] = {
        OPERATOR_CLAIM: _load_operator, ACCOUNT_CLAIM: _load_account, USER_CLAIM: _load_user}
    if kind in ("cluster", "server"):
        raise JwtError(REASON_CLAIM_TYPE, f"{kind} claims are not supported")
    loader = loaders.get(kind)
    if loader is None:
        # Activations and the authorization callout's claims are read as generic claims. One
        # of unknown type gets version -1, so its signature covers the claims part only.
        generic_version = version if kind in (ACTIVATION_CLAIM, AUTHORIZATION_REQUEST_CLAIM,
                                              AUTHORIZATION_RESPONSE_CLAIM) else -1
        return Claims(**_base(data, generic_version))
    if version not in (1, 2):
        raise JwtError(REASON_VERSION, f"library supports version {LIB_VERSION} or less - "
                                       f"received {version}")
    return loader(data, version)


def _check_issuer_kind(claims: Claims) -> None:
    if isinstance(claims, OperatorClaims):
        allowed, reason = {nkeys.OPERATOR}, REASON_NOT_OPERATOR
    elif isinstance(claims, AccountClaims):
        allowed, reason = {nkeys.ACCOUNT, nkeys.OPERATOR}, REASON_NOT_ACCOUNT_OR_OPERATOR
    elif isinstance(claims, UserClaims):
        allowed, reason = {nkeys.ACCOUNT}, REASON_NOT_ACCOUNT
    else:
        return
    found = nkeys.decode_any_public(claims.issuer)
    if found is None or found[0] not in allowed:
        raise JwtError(reason, claims.issuer)


# -- reading typed JSON the way encoding/json fills Go structs ---------------------------------


class _Obj:
    """A JSON object read field by field with Go's types: a missing or null field is the zero
    value (or `default`); a value of the wrong type is a JwtError."""

    def __init__(self, value: Any, where: str) -> None:
        if value is None:
            value = {}
        if not isinstance(value, dict):
            raise JwtError(REASON_INVALID, f"{where}: expected an object")
        self.d: dict[str, Any] = value
        self.where = where

    def _bad(self, key: str, expected: str) -> JwtError:
        return JwtError(REASON_INVALID, f"{self.where}.{key}: expected {expected}")

    def has(self, key: str) -> bool:
        return self.d.get(key) is not None

    def text(self, key: str, default: str = "") -> str:
        value = self.d.get(key)
        if value is None:
            return default
        if not isinstance(value, str):
            raise self._bad(key, "a string")
        return value

    def integer(self, key: str, default: int = 0, lo: int = _INT64[0],
                hi: int = _INT64[1]) -> int:
        value = self.d.get(key)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
            raise self._bad(key, "an integer")
        return value

    def flag(self, key: str, default: bool = False) -> bool:
        value = self.d.get(key)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise self._bad(key, "a boolean")
        return value

    def array(self, key: str) -> list[Any]:
        value = self.d.get(key)
        if value is None:
            return []
        if not isinstance(value, list):
            raise self._bad(key, "an array")
        return value

    def strs(self, key: str) -> tuple[str, ...]:
        items = self.array(key)
        if not all(item is None or isinstance(item, str) for item in items):
            raise self._bad(key, "an array of strings")
        return tuple(item or "" for item in items)

    def obj(self, key: str) -> _Obj:
        return _Obj(self.d.get(key), f"{self.where}.{key}")

    def objs(self, key: str) -> list[_Obj]:
        return [_Obj(item, f"{self.where}.{key}[{i}]") for i, item in enumerate(self.array(key))]

    def int_map(self, key: str) -> dict[str, int]:
        inner = self.obj(key)
        return {k: inner.integer(k) for k in inner.d}


def _base(data: dict[str, Any], version: int) -> dict[str, Any]:
    top = _Obj(data, "claims")
    generic = top if version == 1 else top.obj("nats")
    return {
        "subject": top.text("sub"), "issuer": top.text("iss"), "issued_at": top.integer("iat"),
        "expires": top.integer("exp"), "not_before": top.integer("nbf"), "name": top.text("name"),
        "audience": top.text("aud"), "jti": top.text("jti"), "claim_type": generic.text("type"),
        "version": version, "tags": generic.strs("tags"), "raw": data,
    }


def _fill(cls: type[_D], obj: _Obj, **given: Any) -> _D:
    """A `cls` whose fields not `given` come from the JSON keys of the same name, read by the
    type of their default: int, bool, str, or a tuple of strings."""
    values = dict(given)
    for f in fields(cls):  # type: ignore[arg-type]
        if f.name in values:
            continue
        default = f.default
        if isinstance(default, bool):
            values[f.name] = obj.flag(f.name, default)
        elif isinstance(default, int):
            values[f.name] = obj.integer(f.name, default)
        elif isinstance(default, str):
            values[f.name] = obj.text(f.name, default)
        elif default == ():
            values[f.name] = obj.strs(f.name)
    return cls(**values)


def _permission(obj: _Obj) -> Permission:
    return _fill(Permission, obj)


def _response(obj: _Obj) -> ResponsePermission | None:
    if not obj.has("resp"):
        return None
    resp = obj.obj("resp")
    return ResponsePermission(resp.integer("max"), resp.integer("ttl"))


def _cidrs(obj: _Obj) -> tuple[str, ...]:
    value = obj.d.get("src")
    if isinstance(value, str):  # CIDRList also reads a comma separated string
        out: list[str] = []
        for item in value.lower().split(","):
            item = item.strip()
            if item and item not in out:
                out.append(item)
        return tuple(out)
    return obj.strs("src")


def _user_permission_limits(obj: _Obj, nats_default: int = 0) -> UserPermissionLimits:
    return _fill(
        UserPermissionLimits, obj, pub=_permission(obj.obj("pub")),
        sub=_permission(obj.obj("sub")), resp=_response(obj), src=_cidrs(obj),
        times=tuple(_fill(TimeRange, t) for t in obj.objs("times")),
        subs=obj.integer("subs", nats_default), data=obj.integer("data", nats_default),
        payload=obj.integer("payload", nats_default))


def _load_user(data: dict[str, Any], version: int) -> UserClaims:
    top = _Obj(data, "claims")
    nats = top.obj("nats")
    if version == 1:  # v1 users are unlimited unless they say otherwise; no connection types
        perms = replace(_user_permission_limits(nats, NO_LIMIT), allowed_connection_types=(),
                        proxy_required=False)
        return UserClaims(**_base(data, version), permissions=perms,
                          issuer_account=top.text("issuer_account"))
    return UserClaims(**_base(data, version), permissions=_user_permission_limits(nats),
                      issuer_account=nats.text("issuer_account"))


def _export_type(obj: _Obj) -> str:
    kind = obj.text("type")
    if kind not in ("", "stream", "service"):
        raise JwtError(REASON_INVALID, f"{obj.where}.type: unknown export type {kind!r}")
    return kind


def _latency(obj: _Obj) -> ServiceLatency | None:
    if not obj.has("service_latency"):
        return None
    latency = obj.obj("service_latency")
    sampling = latency.d.get("sampling")
    if isinstance(sampling, str) and sampling.lower() == "headers":
        rate = 0
    else:
        rate = latency.integer("sampling")
    return ServiceLatency(rate, latency.text("results"))


def _export(obj: _Obj) -> Export:
    return _fill(Export, obj, type=_export_type(obj), revocations=obj.int_map("revocations"),
                 response_threshold_ns=obj.integer("response_threshold"), latency=_latency(obj),
                 account_token_position=obj.integer("account_token_position", lo=0))


def _import(obj: _Obj) -> Import:
    return _fill(Import, obj, type=_export_type(obj))


def _limits(obj: _Obj, version: int) -> OperatorLimits:
    tiers = obj.obj("tiered_limits") if version != 1 else _Obj({}, obj.where)
    tiered = {name: _fill(JetStreamLimits, tiers.obj(name)) for name in tiers.d}
    untiered = JetStreamLimits() if tiered or version == 1 else _fill(JetStreamLimits, obj)
    return _fill(OperatorLimits, obj, jetstream=untiered, tiered_limits=tiered)


def _signing_keys(obj: _Obj, version: int) -> dict[str, UserScope | None]:
    if version == 1:
        return dict.fromkeys(obj.strs("signing_keys"))
    keys: dict[str, UserScope | None] = {}
    for i, item in enumerate(obj.array("signing_keys")):
        if isinstance(item, str):
            keys[item] = None
        elif isinstance(item, dict):
            scope = _Obj(item, f"{obj.where}.signing_keys[{i}]")
            if item.get("kind") != "user_scope":
                raise JwtError(REASON_INVALID, f"{scope.where}: unknown signing key scope")
            template = _user_permission_limits(scope.obj("template"), NO_LIMIT)
            keys[scope.text("key")] = _fill(UserScope, scope, template=template)
    return keys


def _mappings(obj: _Obj) -> dict[str, tuple[WeightedMapping, ...]]:
    inner = obj.obj("mappings")
    return {
        source: tuple(_fill(WeightedMapping, m, weight=m.integer("weight", lo=0, hi=255))
                      for m in inner.objs(source))
        for source in inner.d
    }


def _load_account(data: dict[str, Any], version: int) -> AccountClaims:
    nats = _Obj(data, "claims").obj("nats")
    common: dict[str, Any] = {
        "imports": tuple(_import(o) for o in nats.objs("imports")),
        "exports": tuple(_export(o) for o in nats.objs("exports")),
        "limits": _limits(nats.obj("limits"), version),
        "signing_keys": _signing_keys(nats, version),
        "revocations": nats.int_map("revocations"),
    }
    if version == 1:
        return AccountClaims(**_base(data, version), **common)
    defaults = nats.obj("default_permissions")
    return _fill(
        AccountClaims, nats, **_base(data, version), **common,
        default_permissions=Permissions(_permission(defaults.obj("pub")),
                                        _permission(defaults.obj("sub")), _response(defaults)),
        mappings=_mappings(nats),
        authorization=_fill(ExternalAuthorization, nats.obj("authorization")),
        trace=_fill(MsgTrace, nats.obj("trace")) if nats.has("trace") else None)


def _load_operator(data: dict[str, Any], version: int) -> OperatorClaims:
    nats = _Obj(data, "claims").obj("nats")
    claims = _fill(OperatorClaims, nats, **_base(data, version))
    if version == 1:  # fields version 1 did not have
        claims = replace(claims, assert_server_version="", strict_signing_key_usage=False)
    return claims


# -- user validation (jwt's Permissions / Limits Validate) -------------------------------------


def _subject_issues(subject: str) -> list[str]:
    if not subject:
        return ["subject cannot be empty"]
    issues = []
    if " " in subject:
        issues.append(f"subject {subject!r} cannot have spaces")
    if subject[0] == "." or subject[-1] == ".":
        issues.append(f"subject {subject!r} cannot start or end with a `.`")
    if ".." in subject:
        issues.append(f"subject {subject!r} cannot contain consecutive `.`")
    return issues


def _check_permission(issues: list[str], subject: str, permit_queue: bool) -> None:
    tokens = subject.split(" ")
    if len(tokens) > 2:
        issues.append(f"Permission Subject {subject!r} contains too many spaces")
        return
    for token in tokens:
        issues.extend(_subject_issues(token))
    if len(tokens) == 2 and not permit_queue:
        issues.append(f"Permission Subject {subject!r} is not allowed to contain queue")


def _valid_cidr(cidr: str) -> bool:
    """Go's net.ParseCIDR: an address, a slash and a prefix length in digits."""
    address, slash, bits = cidr.partition("/")
    if not slash or not bits.isdigit() or not bits.isascii() or "%" in address:
        return False
    try:
        ipaddress.ip_network(cidr, strict=False)
    except ValueError:
        return False
    return True


_CLOCK = re.compile(r"(\d{1,2}):(\d{2}):(\d{2})(?:[.,]\d+)?", re.ASCII)


def _valid_clock(text: str) -> bool:
    """Go's time.Parse("15:04:05", text)."""
    m = _CLOCK.fullmatch(text)
    return m is not None and int(m[1]) < 24 and int(m[2]) < 60 and int(m[3]) < 60


def _valid_zone(name: str) -> bool:
    if name in ("UTC", "Local"):
        return True
    try:
        zoneinfo.ZoneInfo(name)
    except (KeyError, ValueError, OSError):
        return False
    return True


# -- creds files --------------------------------------------------------------------------------

# jwt's userConfigRE: a line of dashes around a title, the value, a closing line of dashes.
_DECORATED = re.compile(
    r"\s*(?:(?:-{3,}.*-{3,}\r?\n)([\w\-.=]+)(?:\r?\n-{3,}.*-{3,}(?:\r?\n|\Z)))", re.ASCII)
_SEED_PREFIXES = ("SO", "SA", "SU")


@dataclass(frozen=True)
class Creds:
    """What a ``.creds`` file holds: a user JWT and the seed of its key."""

    jwt: str
    seed: str


def parse_decorated_jwt(text: str) -> str:
    """The first ``-----BEGIN ...-----`` block of `text`, or all of it (stripped) if it has none
    (jwt.ParseDecoratedJWT: an operator file may be a bare JWT)."""
    found = _DECORATED.search(text)
    return found.group(1) if found else text.strip()


def parse_creds(text: str) -> Creds:
    """The JWT (first block) and the seed (second block; without blocks, the first line starting
    with SO, SA or SU) of a creds file, as nats.go reads one. JwtError if there is no valid seed.
    The JWT is not decoded here."""
    blocks = [m.group(1) for m in _DECORATED.finditer(text)]
    token = blocks[0] if blocks else text.strip()
    if len(blocks) > 1:
        seed: str | None = blocks[1]
    else:
        seed = next((line.strip() for line in text.splitlines()
                     if line.strip().startswith(_SEED_PREFIXES)), None)
    if seed is None:
        raise JwtError(REASON_CREDS, "no nkey seed found")
    if not seed.startswith(_SEED_PREFIXES) or nkeys.decode_seed(seed) is None:
        raise JwtError(REASON_CREDS, "doesn't contain a seed nkey")
    return Creds(token, seed)
