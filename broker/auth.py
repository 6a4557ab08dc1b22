"""Who may connect, and what they may publish and subscribe to.

Built from `Options`: a single user/password, a token, or a `users` list (with `no_auth_user` for
clients that send no credentials). A user of the list may be an nkey instead of a name and a
password: the server puts a random nonce in each connection's INFO, and the client's CONNECT
carries its public nkey and the nonce signed with the key's seed (ed25519, verified with PyNaCl).
Permissions are allow/deny subject lists, checked per subject with a small cache because a
publisher usually reuses few subjects.
"""

from __future__ import annotations

import base64
import hmac
import os
import time
from collections.abc import Callable
from dataclasses import dataclass

from broker.operator import Operator
from broker.tls import DN_ALIASES, ClientCertificate
from common.jwt import signed_nonce
from common.nkeys import USER, decode_public
from common.subjects import subject_matches
from config.options import Options, Permissions, User


@dataclass
class Identity:
    """The authenticated user of a connection ("" when the server needs no auth)."""

    name: str = ""
    permissions: Permissions | None = None
    account: str = ""  # "" is the global account


class Authenticator:
    def __init__(self, options: Options, operator: Operator | None = None) -> None:
        # Operator mode: users are JWTs signed for the operator's accounts (broker.operator).
        self.operator = operator
        self.token = options.authorization
        self.username = options.username
        self.password = options.password
        users = list(options.users)
        for account in options.accounts:
            users += account.users
        self.users = {u.user: u for u in users if not u.nkey}
        self.nkeys = {u.nkey: u for u in users if u.nkey}
        self.no_auth_user = options.no_auth_user
        self.timeout = options.auth_timeout
        # verify_and_map: the client's certificate names its user (no password).
        self.map_certificates = options.tls is not None and options.tls.verify_and_map
        self._dns = {user.user: parse_dn(user.user) for user in users
                     if not user.nkey and "=" in user.user}

    @property
    def required(self) -> bool:
        return bool(self.token or self.username or self.users or self.nkeys or self.operator)

    @property
    def nonce_required(self) -> bool:
        """Whether INFO carries a nonce for nkey (and JWT) users to sign."""
        return bool(self.nkeys or self.operator)

    def authenticate(self, connect: dict, nonce: str = "",
                     certificate: ClientCertificate | None = None) -> Identity | None:
        """The identity for these CONNECT credentials, or None if they are refused. `nonce`:
        the one this connection's INFO carried (what an nkey user signs); `certificate`: the
        client's verified certificate, which names the user with verify_and_map."""
        if self.map_certificates:
            user = self._user_of(certificate)
            return _identity(user) if user is not None else None
        if not self.required:
            return Identity()
        if self.operator is not None:
            grant = self.operator.authenticate(connect, nonce)
            if grant is None:
                return None
            return Identity(grant.user, grant.permissions, grant.account)
        if self.token:
            return Identity() if _same(connect.get("auth_token"), self.token) else None
        nkey = connect.get("nkey")
        if nkey:
            entry = self.nkeys.get(nkey) if isinstance(nkey, str) else None
            if entry is None or not _signed(entry.nkey, nonce, connect.get("sig")):
                return None
            return _identity(entry)
        user = connect.get("user")
        if not user and not connect.get("pass") and self.no_auth_user:
            return self.default_identity()
        if self.username and user == self.username:
            return Identity(user) if _same(connect.get("pass"), self.password) else None
        entry = self.users.get(user) if isinstance(user, str) else None
        if entry is None or not _same(connect.get("pass"), entry.password):
            return None
        return _identity(entry)

    def _user_of(self, certificate: ClientCertificate | None) -> User | None:
        """nats-server's order: the certificate's emails, DNS names and URIs, its subject as a
        distinguished name, then as Go renders it (with the domain components moved last)."""
        if certificate is None:
            return None
        for name in (*certificate.emails, *certificate.dns_names, *certificate.uris):
            if name in self.users:
                return self.users[name]
        for name, dn in self._dns.items():
            if dn is not None and dn == certificate.subject:
                return self.users[name]
        for text in (certificate.with_dcs, certificate.subject_text):
            if text and text in self.users:
                return self.users[text]
        return None

    def default_identity(self) -> Identity | None:
        """The `no_auth_user` identity, used when a client sends an op before CONNECT."""
        if not self.no_auth_user:
            return None
        entry = self.users.get(self.no_auth_user) or self.nkeys.get(self.no_auth_user)
        return _identity(entry) if entry else None


def _identity(user: User) -> Identity:
    return Identity(user.user or user.nkey, user.permissions, user.account)


def parse_dn(text: str) -> tuple[tuple[tuple[str, str], ...], ...] | None:
    """A distinguished name as RFC 4514 writes it (`CN=alice,O=Acme`): its RDNs, each a sorted
    tuple of (attribute type in lower case, value), to compare with a certificate's subject;
    None if it is not one."""
    rdns = []
    for rdn in _split_unescaped(text, ","):
        attributes = []
        for part in _split_unescaped(rdn, "+"):
            kind, eq, value = part.partition("=")
            if not eq or not kind.strip():
                return None
            name = kind.strip().lower()
            attributes.append((DN_ALIASES.get(name, name), _unescape(value.strip())))
        rdns.append(tuple(sorted(attributes)))
    return tuple(rdns)


def _split_unescaped(text: str, separator: str) -> list[str]:
    parts, current, escaped = [], [], False
    for char in text:
        if escaped:
            current.append("\\" + char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == separator:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return parts


def _unescape(value: str) -> str:
    out, index = [], 0
    while index < len(value):
        char = value[index]
        if char == "\\" and index + 1 < len(value):
            pair = value[index + 1:index + 3]
            if len(pair) == 2 and all(c in "0123456789abcdefABCDEF" for c in pair):
                out.append(chr(int(pair, 16)))
                index += 3
                continue
            out.append(value[index + 1])
            index += 2
            continue
        out.append(char)
        index += 1
    return "".join(out)


def new_nonce() -> str:
    """11 random bytes, base64url without padding: nats-server's nonce."""
    return base64.urlsafe_b64encode(os.urandom(11)).rstrip(b"=").decode()


def _signed(nkey: str, nonce: str, sig: object) -> bool:
    """Whether `sig` is the user nkey `nkey`'s signature of `nonce`."""
    return decode_public(nkey, USER) is not None and signed_nonce(nkey, nonce, sig)


def _same(given: object, expected: str) -> bool:
    if not isinstance(given, str):
        return False
    return hmac.compare_digest(given.encode(), expected.encode())


class PermissionChecker:
    """Answers "may publish to / subscribe to this subject?" for one identity.

    With `allow_responses`, the reply subjects of requests delivered to this client may be
    published to (up to `max` times each, within `expires`), even where the rules deny it; when
    the publish allow-list is empty it then means "replies only", as in nats-server.
    """

    CACHE_MAX = 256
    RESPONSES_MAX = 10_000

    def __init__(self, permissions: Permissions, clock: Callable[[], float] = time.monotonic,
                 ) -> None:
        publish_allow = permissions.publish_allow
        self.tracks_responses = permissions.allow_responses
        if self.tracks_responses and not publish_allow:
            publish_allow = [_NOTHING]
        self._pub = _Rules(publish_allow, permissions.publish_deny)
        self._sub = _Rules(permissions.subscribe_allow, permissions.subscribe_deny)
        self._pub_cache: dict[bytes, bool] = {}
        self._responses: dict[bytes, list[float]] = {}  # reply -> [remaining, expires_at]
        self._max_responses = permissions.allow_responses_max_msgs
        self._expires = permissions.allow_responses_expires
        self._clock = clock

    def may_publish(self, subject: bytes) -> bool:
        allowed = self._pub_cache.get(subject)
        if allowed is None:
            allowed = self._pub.allows(subject)
            if len(self._pub_cache) >= self.CACHE_MAX:
                self._pub_cache.clear()
            self._pub_cache[subject] = allowed
        return allowed or self._use_response(subject)

    def expect_response(self, reply: bytes) -> None:
        """A request with this reply subject was delivered to the client."""
        if len(self._responses) >= self.RESPONSES_MAX:
            self._prune()
        remaining = self._max_responses if self._max_responses > 0 else float("inf")
        self._responses[reply] = [remaining, self._clock() + self._expires]

    def _use_response(self, subject: bytes) -> bool:
        entry = self._responses.get(subject)
        if entry is None:
            return False
        if entry[1] < self._clock():
            del self._responses[subject]
            return False
        entry[0] -= 1
        if entry[0] <= 0:
            del self._responses[subject]
        return True

    def _prune(self) -> None:
        now = self._clock()
        for reply in [r for r, (_, exp) in self._responses.items() if exp < now]:
            del self._responses[reply]
        while len(self._responses) >= self.RESPONSES_MAX:
            del self._responses[next(iter(self._responses))]

    def may_subscribe(self, subject: bytes) -> bool:
        return self._sub.allows(subject)


_NOTHING = "\x00nothing"  # an allow-list entry no real subject matches


class _Rules:
    def __init__(self, allow: list[str], deny: list[str]) -> None:
        self.allow = [s.encode() for s in allow]
        self.deny = [s.encode() for s in deny]

    def allows(self, subject: bytes) -> bool:
        if self.allow and not any(_covers(p, subject) for p in self.allow):
            return False
        return not any(_covers(p, subject) for p in self.deny)


def _covers(pattern: bytes, subject: bytes) -> bool:
    # A wildcard SUB is allowed when the permission pattern is at least as wide: compare the
    # subscription as if it were literal, which is exact for the common cases (`foo.>` vs `foo.*`).
    return pattern == subject or subject_matches(pattern, subject)
