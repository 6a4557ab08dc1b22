"""Accounts: isolated subject spaces, and what they share with each other.

Each account has its own subscriptions (a `Sublist`), users and JetStream: a subject published
in account A reaches only A's subscribers. Accounts share through exports and imports, as in
nats-server:

- a **stream import** (A imports B's stream `events.>`): what is published in B on those
  subjects also reaches A's subscribers, under the import's subject (`to`, or `prefix.<subject>`);
- a **service import** (A imports B's service `svc.>`, locally as `b.svc.>`): a request in A
  reaches B's responders under the exported subject, with a reply subject of B's
  (`_R_.<id>.<token>`) that routes the response back to the requester's reply subject in A.

The server builds both as internal subscriptions, "bridges", that route a message from one
account into the other (broker/server.py). What is decided without I/O lives here: the subject
mapping of an import, the pending responses of service imports, and who may import what.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass

from broker.jetstream.bus import InterestCallback
from broker.jetstream.jetstream import JetStream
from broker.sublist import Sublist, Subscription
from common.subjects import subject_matches
from config.options import GLOBAL_ACCOUNT, AccountOptions, Export, Import

# nats-server's response threshold: how long a service import waits for responses (seconds).
RESPONSE_THRESHOLD = 120.0
# How many pending responses an account keeps before it drops the oldest.
MAX_PENDING_RESPONSES = 100_000
# How many accounts one message may cross through imports (a guard against import cycles).
MAX_IMPORT_HOPS = 8
REPLY_PREFIX = b"_R_."


class Account:
    """One account on this server."""

    def __init__(self, name: str, options: AccountOptions | None = None,
                 cache: bool = True) -> None:
        self.name = name
        self.name_bytes = name.encode()
        self.options = options or AccountOptions(name)
        self.sublist = Sublist(cache=cache, account=self.name_bytes)
        # The hot path's first try: a cached match or None.
        self.lookup = self.sublist.cached
        # Literal subjects whose interest someone watches (push consumers): subject -> callbacks.
        self.interest_watchers: dict[bytes, list[InterestCallback]] = {}
        self.responses = PendingResponses()
        self.response_sub: Subscription | None = None  # the bridge taking responses back
        self.jetstream: JetStream | None = None  # when the account has JetStream

    def __repr__(self) -> str:
        return f"Account({self.name!r})"

    @property
    def is_global(self) -> bool:
        return self.name == GLOBAL_ACCOUNT

    def exports_to(self, importer: str, subject: str, service: bool) -> Export | None:
        """The export of this account that lets `importer` import `subject`, or None."""
        for export in self.options.exports:
            if export.service != service:
                continue
            if export.accounts and importer not in export.accounts:
                continue
            if export.subject == subject or subject_matches(export.subject.encode(),
                                                           subject.encode()):
                return export
        return None


class SubjectMap:
    """Maps the subjects of `source` (a pattern) onto `dest`: the wildcard tokens of a subject
    fill the wildcards of `dest` in order (`x.*.>` -> `y.*.>` maps `x.a.b.c` to `y.a.b.c`).
    A literal `dest` takes every subject to itself."""

    def __init__(self, source: str, dest: str) -> None:
        self.source = source.encode().split(b".")
        self.dest = dest.encode().split(b".")
        self.identity = source == dest

    def apply(self, subject: bytes) -> bytes:
        if self.identity:
            return subject
        tokens = subject.split(b".")
        captured: list[bytes] = []
        for index, pattern in enumerate(self.source):
            if pattern == b">":
                captured.append(b".".join(tokens[index:]))
                break
            if pattern == b"*":
                captured.append(tokens[index])
        out: list[bytes] = []
        for token in self.dest:
            if token in (b"*", b">") and captured:
                out.append(captured.pop(0))
            else:
                out.append(token)
        return b".".join(out)


def stream_import_map(imp: Import) -> tuple[str, SubjectMap]:
    """(the exporter's subject to listen on, the map into the importer's subjects)."""
    if imp.prefix:
        return imp.subject, SubjectMap(imp.subject, f"{imp.prefix}.{imp.subject}")
    return imp.subject, SubjectMap(imp.subject, imp.to or imp.subject)


def service_import_map(imp: Import) -> tuple[str, SubjectMap]:
    """(the importer's subject to listen on, the map into the exporter's subjects)."""
    local = imp.to or imp.subject
    return local, SubjectMap(local, imp.subject)


@dataclass
class PendingResponse:
    """Where the responses to one request through a service import go."""

    account: Account  # the requester's account
    reply: bytes  # the requester's reply subject there
    singleton: bool  # one response ends it (response_type Singleton)
    expires: float


class PendingResponses:
    """The reply subjects this account handed to its responders on behalf of importers:
    `_R_.<id>.<token>` -> the requester's account and reply subject."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.prefix = REPLY_PREFIX + _token(6) + b"."
        self._pending: dict[bytes, PendingResponse] = {}
        self._clock = clock

    @property
    def wildcard(self) -> str:
        """The subject the account's response bridge listens on."""
        return (self.prefix + b">").decode()

    def __len__(self) -> int:
        return len(self._pending)

    def open(self, requester: Account, reply: bytes, response_type: str) -> bytes:
        """A new reply subject for a request whose responses go to `reply` in `requester`."""
        if len(self._pending) >= MAX_PENDING_RESPONSES:
            self.expire()
        while len(self._pending) >= MAX_PENDING_RESPONSES:
            del self._pending[next(iter(self._pending))]
        subject = self.prefix + _token(6)
        self._pending[subject] = PendingResponse(requester, reply, response_type == "Singleton",
                                                 self._clock() + RESPONSE_THRESHOLD)
        return subject

    def take(self, subject: bytes) -> PendingResponse | None:
        """Where a response on `subject` goes, or None (unknown or expired)."""
        pending = self._pending.get(subject)
        if pending is None:
            return None
        if pending.expires < self._clock():
            del self._pending[subject]
            return None
        if pending.singleton:
            del self._pending[subject]
        return pending

    def expire(self) -> None:
        now = self._clock()
        for subject in [s for s, p in self._pending.items() if p.expires < now]:
            del self._pending[subject]


_ALPHABET = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def _token(size: int) -> bytes:
    return bytes(_ALPHABET[b % len(_ALPHABET)] for b in os.urandom(size))
