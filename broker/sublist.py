"""The subscription index: a token trie with `*`/`>` wildcards, queue groups and a match cache.

`match(subject)` is on the hot path of every publish, so its answer is cached per literal subject.
A change only evicts the cache entries it can affect: a literal subscription evicts one entry, a
wildcard one evicts the cached subjects it matches.

Each match result also carries, for every plain subscriber, the `MSG <subject> <sid> ` start of
the line it will receive, so delivery does not format tokens per message.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from common.subjects import FWC, PWC, is_literal, subject_matches

CACHE_MAX = 1024
CACHE_SWEEP = CACHE_MAX // 4

# Signature of a server-side subscriber: (subject, reply, header_len, payload). header_len is -1
# when the message has no headers; otherwise payload starts with that many header bytes.
InternalHandler = Callable[[bytes, bytes, int, bytes], None]


class Subscription:
    """One SUB of one client (or an internal handler when `client` is None)."""

    __slots__ = ("bridge", "callback", "client", "delivered", "max", "queue", "sid", "subject",
                 "weight")

    def __init__(
        self,
        subject: bytes,
        sid: bytes,
        client: Any = None,
        queue: bytes | None = None,
        callback: InternalHandler | None = None,
    ) -> None:
        self.subject = subject
        self.sid = sid
        self.client = client
        self.queue = queue
        self.callback = callback
        self.max = 0  # auto-unsubscribe after this many deliveries; 0 = never
        self.delivered = 0
        # A peer's queue interest stands for this many members there (their share of the load).
        self.weight = 1
        # An account import's entry (broker.account): the server routes what it gets into
        # another account, and never feeds it what a peer forwarded.
        self.bridge = False

    def __repr__(self) -> str:
        return f"Subscription({self.subject!r}, sid={self.sid!r}, queue={self.queue!r})"


class MatchResult:
    """Subscribers of one literal subject: plain ones with their MSG line starts, queue groups."""

    __slots__ = ("psubs", "qsubs")

    def __init__(
        self, psubs: list[tuple[Subscription, bytes]], qsubs: list[list[Subscription]]
    ) -> None:
        self.psubs = psubs
        self.qsubs = qsubs

    def __len__(self) -> int:
        return len(self.psubs) + sum(len(group) for group in self.qsubs)


EMPTY_RESULT = MatchResult([], [])


def msg_start(subject: bytes, sid: bytes) -> bytes:
    """`MSG <subject> <sid> `: what every MSG line to this subscription starts with."""
    return b"MSG %s %s " % (subject, sid)


def route_msg_start(account: bytes, subject: bytes) -> bytes:
    """`RMSG <account> <subject> `: the start of the line that forwards a message to a peer
    server, which matches it against its own subscribers of that account (`broker.routeproto`)."""
    return b"RMSG %s %s " % (account, subject)


class _Node:
    __slots__ = ("next", "psubs", "qsubs")

    def __init__(self) -> None:
        self.next: _Level | None = None
        self.psubs: dict[Subscription, None] = {}
        self.qsubs: dict[bytes, dict[Subscription, None]] = {}

    def is_empty(self) -> bool:
        return not self.psubs and not self.qsubs and (self.next is None or self.next.is_empty())


class _Level:
    __slots__ = ("fwc", "nodes", "pwc")

    def __init__(self) -> None:
        self.nodes: dict[bytes, _Node] = {}
        self.pwc: _Node | None = None
        self.fwc: _Node | None = None

    def is_empty(self) -> bool:
        return not self.nodes and self.pwc is None and self.fwc is None

    def child(self, token: bytes) -> _Node:
        if token == PWC:
            if self.pwc is None:
                self.pwc = _Node()
            return self.pwc
        if token == FWC:
            if self.fwc is None:
                self.fwc = _Node()
            return self.fwc
        node = self.nodes.get(token)
        if node is None:
            node = self.nodes[token] = _Node()
        return node

    def find(self, token: bytes) -> _Node | None:
        if token == PWC:
            return self.pwc
        if token == FWC:
            return self.fwc
        return self.nodes.get(token)

    def prune(self, token: bytes, node: _Node) -> None:
        if not node.is_empty():
            return
        if token == PWC:
            self.pwc = None
        elif token == FWC:
            self.fwc = None
        else:
            self.nodes.pop(token, None)


@dataclass
class SublistStats:
    num_subscriptions: int
    num_cache: int
    num_inserts: int
    num_removes: int
    num_matches: int
    cache_hit_rate: float
    max_fanout: int
    avg_fanout: float


class Sublist:
    """All subscriptions of one account, matched by subject."""

    def __init__(self, cache: bool = True, account: bytes = b"$G") -> None:
        self.account = account  # named on the lines that forward a message to a peer server
        self._root = _Level()
        self._cache: dict[bytes, MatchResult] | None = {} if cache else None
        # The hot path's first try: a cached result or None (then call `match`).
        self.cached: Callable[[bytes], MatchResult | None] = (
            self._cache.get if self._cache is not None else _no_cache)
        self.count = 0
        self.inserts = 0
        self.removes = 0
        self.cache_misses = 0
        # Results shared by every subject starting with the same tokens (see `_prefix_hit`).
        self._prefixes: dict[bytes, MatchResult] = {}
        self._prefix_sizes: set[int] = set()

    def insert(self, sub: Subscription) -> None:
        level: _Level | None = self._root
        node: _Node | None = None
        for token in sub.subject.split(b"."):
            if level is None:
                assert node is not None  # only a node's missing next level is None
                level = node.next = _Level()
            node = level.child(token)
            level = node.next
        assert node is not None
        if sub.queue is None:
            node.psubs[sub] = None
        else:
            node.qsubs.setdefault(sub.queue, {})[sub] = None
        self.count += 1
        self.inserts += 1
        self._evict(sub.subject)

    def remove(self, sub: Subscription) -> bool:
        """Remove `sub`; False when it was not in the index."""
        path: list[tuple[_Level, bytes, _Node]] = []
        level: _Level | None = self._root
        node: _Node | None = None
        for token in sub.subject.split(b"."):
            if level is None:
                return False
            node = level.find(token)
            if node is None:
                return False
            path.append((level, token, node))
            level = node.next
        assert node is not None
        if not self._remove_from_node(node, sub):
            return False
        for parent, token, child in reversed(path):
            if child.next is not None and child.next.is_empty():
                child.next = None
            parent.prune(token, child)
        self.count -= 1
        self.removes += 1
        self._evict(sub.subject)
        return True

    @staticmethod
    def _remove_from_node(node: _Node, sub: Subscription) -> bool:
        if sub.queue is None:
            return node.psubs.pop(sub, False) is None
        group = node.qsubs.get(sub.queue)
        if group is None or group.pop(sub, False) is not None:
            return False
        if not group:
            del node.qsubs[sub.queue]
        return True

    def match(self, subject: bytes) -> MatchResult:
        """All subscriptions matching `subject`. Callers may try `cached(subject)` first."""
        cache = self._cache
        if cache is None:
            return self._match(subject)
        result = cache.get(subject)
        if result is not None:
            return result
        result = self._prefix_hit(subject)
        if result is not None:
            return result
        self.cache_misses += 1
        result = self._match(subject)
        if len(cache) >= CACHE_MAX:
            for key in list(cache)[:CACHE_SWEEP]:
                del cache[key]
        cache[subject] = result
        return result

    def _prefix_hit(self, subject: bytes) -> MatchResult | None:
        """Subjects that differ only after the tokens a match looked at (acks: `$JS.ACK.<s>.
        <c>.<dc>.<seq>...`, unique every time) share one result when only server-side
        subscribers matched: those get no MSG line that would name the subject."""
        for n in self._prefix_sizes:
            end = -1
            for _ in range(n):
                end = subject.find(b".", end + 1)
                if end < 0:
                    break
            else:
                result = self._prefixes.get(subject[:end])
                if result is not None:
                    return result
        return None

    def _match(self, subject: bytes) -> MatchResult:
        psubs: dict[Subscription, None] = {}
        qgroups: dict[bytes, dict[Subscription, None]] = {}
        tokens = subject.split(b".")
        if not all(tokens):
            return EMPTY_RESULT
        depth = _match_level(self._root, tokens, psubs, qgroups, 0)
        if not psubs and not qgroups:
            return EMPTY_RESULT
        if not qgroups and depth < len(tokens) - 1 and len(self._prefixes) < CACHE_MAX and \
                all(sub.client is None for sub in psubs):
            # Tokens past `depth` were never looked at and only `>` subscriptions matched:
            # every subject with these first depth+1 tokens (and more after) matches the same.
            result = MatchResult([(sub, b"") for sub in psubs], [])
            self._prefixes[b".".join(tokens[:depth + 1])] = result
            self._prefix_sizes.add(depth + 1)
            return result
        return MatchResult(_line_starts(self.account, subject, psubs),
                           [_members(group) for group in qgroups.values()])

    def _evict(self, pattern: bytes) -> None:
        if self._prefixes:
            self._prefixes.clear()
            self._prefix_sizes.clear()
        cache = self._cache
        if not cache:
            return
        if is_literal(pattern):
            cache.pop(pattern, None)
            return
        for key in [k for k in cache if subject_matches(pattern, k)]:
            del cache[key]

    def __iter__(self) -> Iterator[Subscription]:
        yield from _walk(self._root)

    def stats(self, matches: int) -> SublistStats:
        """Statistics for /subsz; `matches` is how many lookups the server made in all."""
        fanouts = [len(r) for r in (self._cache or {}).values()]
        matches = max(matches, self.cache_misses)
        hits = matches - self.cache_misses
        return SublistStats(
            num_subscriptions=self.count,
            num_cache=len(self._cache or {}),
            num_inserts=self.inserts,
            num_removes=self.removes,
            num_matches=matches,
            cache_hit_rate=hits / matches if matches else 0.0,
            max_fanout=max(fanouts, default=0),
            avg_fanout=sum(fanouts) / len(fanouts) if fanouts else 0.0,
        )


def _no_cache(subject: bytes) -> None:
    return None


def _match_level(
    level: _Level | None,
    tokens: list[bytes],
    psubs: dict[Subscription, None],
    qgroups: dict[bytes, dict[Subscription, None]],
    base: int,
) -> int:
    """Collect the matches; return the deepest token index (from the subject's start) whose
    value or presence the result depends on."""
    node: _Node | None = None
    pwc: _Node | None = None
    depth = base
    for i, token in enumerate(tokens):
        if level is None:
            # Nothing deeper: token i's value does not matter, only that it exists, which a
            # prefix hit guarantees (it needs more tokens than the prefix).
            return depth
        # A deeper answer from a `*` branch before this one still stands.
        depth = max(depth, base + i)
        if level.fwc is not None:
            _collect(level.fwc, psubs, qgroups)
        pwc = level.pwc
        if pwc is not None:
            depth = max(depth, _match_level(pwc.next, tokens[i + 1:], psubs, qgroups,
                                            base + i + 1))
        node = level.nodes.get(token)
        level = node.next if node is not None else None
    # All tokens consumed: the result depends on the subject's exact length.
    depth = max(depth, base + len(tokens))
    if node is not None:
        _collect(node, psubs, qgroups)
    if pwc is not None:
        _collect(pwc, psubs, qgroups)
    return depth


def _line_starts(account: bytes, subject: bytes, psubs: dict[Subscription, None],
                 ) -> list[tuple[Subscription, bytes]]:
    """Each plain subscriber with the start of its MSG line. Internal subscribers get no line.
    A peer server gets a message once however many of its subscriptions match."""
    starts: list[tuple[Subscription, bytes]] = []
    peers: set[Any] | None = None
    for sub in psubs:
        client = sub.client
        if client is None:
            starts.append((sub, b""))
        elif client.is_route:
            if peers is None:
                peers = set()
            if client not in peers:
                peers.add(client)
                starts.append((sub, route_msg_start(account, subject)))
        else:
            starts.append((sub, msg_start(subject, sub.sid)))
    return starts


def _members(group: dict[Subscription, None]) -> list[Subscription]:
    """A queue group's members for a random pick; a peer's interest counts as its weight."""
    members = list(group)
    for sub in group:
        if sub.weight > 1:
            members += [sub] * (sub.weight - 1)
    return members


def _collect(
    node: _Node, psubs: dict[Subscription, None], qgroups: dict[bytes, dict[Subscription, None]]
) -> None:
    psubs.update(node.psubs)
    for name, group in node.qsubs.items():
        qgroups.setdefault(name, {}).update(group)


def _walk(level: _Level) -> Iterator[Subscription]:
    nodes = list(level.nodes.values())
    nodes += [n for n in (level.pwc, level.fwc) if n is not None]
    for node in nodes:
        yield from node.psubs
        for group in node.qsubs.values():
            yield from group
        if node.next is not None:
            yield from _walk(node.next)
