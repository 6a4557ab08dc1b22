"""Who may connect, and what they may publish and subscribe to.

Built from `Options`: a single user/password, a token, or a `users` list (with `no_auth_user` for
clients that send no credentials). Permissions are allow/deny subject lists, checked per subject
with a small cache because a publisher usually reuses few subjects.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Callable
from dataclasses import dataclass

from common.subjects import subject_matches
from config.options import Options, Permissions


@dataclass
class Identity:
    """The authenticated user of a connection ("" when the server needs no auth)."""

    name: str = ""
    permissions: Permissions | None = None


class Authenticator:
    def __init__(self, options: Options) -> None:
        self.token = options.authorization
        self.username = options.username
        self.password = options.password
        self.users = {u.user: u for u in options.users}
        self.no_auth_user = options.no_auth_user
        self.timeout = options.auth_timeout

    @property
    def required(self) -> bool:
        return bool(self.token or self.username or self.users)

    def authenticate(self, connect: dict) -> Identity | None:
        """The identity for these CONNECT credentials, or None if they are refused."""
        if not self.required:
            return Identity()
        if self.token:
            return Identity() if _same(connect.get("auth_token"), self.token) else None
        user = connect.get("user")
        if not user and not connect.get("pass") and self.no_auth_user:
            return self.default_identity()
        if self.username and user == self.username:
            return Identity(user) if _same(connect.get("pass"), self.password) else None
        entry = self.users.get(user) if isinstance(user, str) else None
        if entry is None or not _same(connect.get("pass"), entry.password):
            return None
        return Identity(entry.user, entry.permissions)

    def default_identity(self) -> Identity | None:
        """The `no_auth_user` identity, used when a client sends an op before CONNECT."""
        entry = self.users.get(self.no_auth_user) if self.no_auth_user else None
        return Identity(entry.user, entry.permissions) if entry else None


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
