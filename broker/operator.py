"""Operator mode: accounts and users that an operator's keys signed, as JWTs.

The accounts are the memory resolver's preloaded JWTs: each trusted when the operator (or one
of its signing keys) signed it and it has not expired; an account that is not trusted is left
out, and its users are refused, as nats-server refuses them at lookup. Each trusted account
becomes an account of the server, named by its public key, with its JetStream limits,
exports and imports from its JWT.

A user connects with its JWT and its key's signature of the nonce in INFO (nats-py's
`user_credentials`, a `.creds` file). It is accepted when its JWT is valid now, was signed by
its account or one of the account's signing keys (a scoped key's template then sets its
permissions), is not revoked, and the signature is its own. The reason for a refusal goes to
the debug log in nats-server's words; the client sees `Authorization Violation`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from broker.logger import logger
from common import jwt
from common.jwt import JwtError
from config.options import (
    AccountJetStream,
    AccountOptions,
    Export,
    Import,
    Options,
    Permissions,
)

REVOKED = "User authentication revoked"
NO_JWT = "Authentication requires a user JWT"
NOT_VALID = "User JWT not valid"
NO_LONGER_VALID = "User JWT no longer valid"
ISSUER_UNKNOWN = "User JWT issuer is not known"
ACCOUNT_MISSING = "Account JWT lookup error: account missing"
SCOPED = "scoped users require no permissions or limits set"
BAD_SIGNATURE = "Signature not verified"


@dataclass
class UserGrant:
    """What an accepted user JWT gives its connection."""

    user: str  # the user's public key
    account: str  # its account's public key
    permissions: Permissions | None
    name: str


class Operator:
    """The trusted operators and the accounts they signed."""

    def __init__(self, options: Options, clock: Callable[[], float] = time.time) -> None:
        self.operators = list(options.operators)
        self._clock = clock
        self.accounts: dict[str, jwt.AccountClaims] = {}
        for public, token in options.resolver_preload.items():
            problem, claims = self._trusted(public, token)
            if claims is None:
                logger.error("Account %s refused: %s", public, problem)
                continue
            self.accounts[public] = claims

    def _trusted(self, public: str, token: str) -> tuple[str, jwt.AccountClaims | None]:
        try:
            claims = jwt.decode_account(token, self._clock())
        except JwtError as exc:
            return f"account validation failed: {exc}", None
        if claims.subject != public:
            return "account JWT subject does not match its key", None
        if not any(op.did_sign(claims) for op in self.operators):
            return "account validation failed: not signed by a trusted operator", None
        unsupported = _unsupported_account_limits(claims)
        if unsupported:
            return f"{unsupported} are not supported by this server", None
        return "", claims

    def account_options(self) -> list[AccountOptions]:
        """The trusted accounts as the server's accounts."""
        return [_account_options(public, claims) for public, claims in self.accounts.items()]

    def authenticate(self, connect: dict[str, object], nonce: str) -> UserGrant | None:
        """The grant of a CONNECT's user JWT, or None (the reason logged at debug level)."""
        problem, grant = self._check_user(connect, nonce)
        if grant is None:
            logger.debug("Operator mode: %s", problem)
        return grant

    def _check_user(self, connect: dict[str, object], nonce: str,
                    ) -> tuple[str, UserGrant | None]:
        token = connect.get("jwt")
        if not isinstance(token, str) or not token:
            return NO_JWT, None
        try:
            user = jwt.decode_user(token)
        except JwtError as exc:
            return f"{NOT_VALID}: {exc}", None
        try:
            user.check_times(self._clock())
        except JwtError:
            return NO_LONGER_VALID, None
        if user.validate():
            return f"{NOT_VALID}: {'; '.join(user.validate())}", None
        unsupported = _unsupported_user_limits(user.permissions)
        if unsupported:
            return f"{unsupported} in user JWTs are not supported by this server", None
        account = self.accounts.get(user.account)
        if account is None:
            return ACCOUNT_MISSING, None
        if not account.did_sign(user):
            return ISSUER_UNKNOWN, None
        limits = user.permissions
        scope = account.signing_keys.get(user.issuer)
        if scope is not None:
            try:
                scope.check_signed(user)
            except JwtError:
                return SCOPED, None
            limits = scope.template
        if account.is_revoked(user.subject, user.issued_at):
            return REVOKED, None
        if not (limits.bearer_token and not account.limits.disallow_bearer) and \
                not jwt.signed_nonce(user.subject, nonce, connect.get("sig")):
            return BAD_SIGNATURE, None
        return "", UserGrant(user.subject, user.account, _permissions(limits), user.name)


def _unsupported_account_limits(claims: jwt.AccountClaims) -> str:
    """Limits of an account JWT this server does not enforce ("" if none): such an account is
    refused rather than served without them."""
    limits = claims.limits
    named = [name for name in ("conn", "subs", "data", "payload", "leaf")
             if getattr(limits, name) > 0]
    if limits.tiered_limits:
        named.append("tiered JetStream limits")
    if claims.mappings:
        named.append("subject mappings")
    return ", ".join(named)


def _unsupported_user_limits(limits: jwt.UserPermissionLimits) -> str:
    """Restrictions of a user JWT this server does not enforce ("" if none): such a user is
    refused rather than let in without them."""
    named = [name for name in ("subs", "data", "payload") if getattr(limits, name) > 0]
    if limits.src:
        named.append("source networks")
    if limits.times:
        named.append("connection times")
    if limits.allowed_connection_types:
        named.append("connection types")
    if limits.proxy_required:
        named.append("proxy requirements")
    return ", ".join(named)


def _permissions(limits: jwt.UserPermissionLimits) -> Permissions | None:
    """A user JWT's pub / sub / resp as the server's permissions (None: no rules)."""
    if not (limits.pub.allow or limits.pub.deny or limits.sub.allow or limits.sub.deny or
            limits.resp is not None):
        return None
    permissions = Permissions(publish_allow=list(limits.pub.allow),
                              publish_deny=list(limits.pub.deny),
                              subscribe_allow=list(limits.sub.allow),
                              subscribe_deny=list(limits.sub.deny))
    if limits.resp is not None:
        permissions.allow_responses = True
        permissions.allow_responses_max_msgs = limits.resp.max_msgs or 1
        if limits.resp.ttl_ns > 0:
            permissions.allow_responses_expires = limits.resp.ttl_ns / 1e9
    return permissions


def _account_options(public: str, claims: jwt.AccountClaims) -> AccountOptions:
    return AccountOptions(
        name=public,
        jetstream=_jetstream(claims.limits),
        exports=[Export(subject=e.subject, service=e.type == "service",
                        response_type=e.response_type or "Singleton")
                 for e in claims.exports if e.type in ("stream", "service") and not e.token_req],
        imports=[_import(i) for i in claims.imports
                 if i.type in ("stream", "service") and not i.token],
    )


def _import(imp: jwt.Import) -> Import:
    if imp.type == "service":
        return Import(account=imp.account, subject=imp.subject, service=True,
                      to=imp.local_subject or imp.to)
    if imp.local_subject:
        return Import(account=imp.account, subject=imp.subject, to=imp.local_subject)
    return Import(account=imp.account, subject=imp.subject, prefix=imp.to)


def _jetstream(limits: jwt.OperatorLimits) -> AccountJetStream | None:
    """JetStream as the account JWT grants it: on when it gives memory or disk storage. The
    JWT's 0 for a count means no limit (nsc writes -1 for the same)."""
    js = limits.jetstream
    if not limits.is_jetstream_enabled():
        return None

    def limit(value: int) -> int:
        return -1 if value <= 0 else value

    return AccountJetStream(
        max_memory=js.mem_storage, max_file=js.disk_storage, max_streams=limit(js.streams),
        max_consumers=limit(js.consumer), max_ack_pending=limit(js.max_ack_pending),
        memory_max_stream_bytes=limit(js.mem_max_stream_bytes),
        storage_max_stream_bytes=limit(js.disk_max_stream_bytes),
        max_bytes_required=js.max_bytes_required)
