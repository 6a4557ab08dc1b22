"""The message store interface shared by `FileStore` and `MemoryStore`.

A store holds one stream's messages: sequence-numbered records of (subject, header bytes, payload,
timestamp, ttl). It knows nothing of NATS beyond subjects as dot-separated strings with `*`/`>`
wildcards in filters, and nothing of Raft. It is used from one thread (the event loop), except
`SyncJob.run`, which the caller runs in a worker thread so fsync does not block the loop.

Durability contract (group commit):

    job = store.begin_sync()          # loop thread: captures everything stored so far
    await loop.run_in_executor(None, job.run)   # worker thread: write + fdatasync, no store state
    store.finish_sync(job)            # loop thread: what the job covered is now durable

Everything stored, skipped, removed or purged before `begin_sync()` is on stable storage once
`job.run()` has returned; only then may a PubAck (or API reply) for it be sent. Stores may be used
while a job runs; those later changes are covered by the next job.

Byte accounting: `StoreState.bytes` and `max_bytes` count what nats-server counts, which depends on
the kind of store: `file_msg_size` for a FileStore, `memory_msg_size` for a MemoryStore
(`MessageStore.msg_size` gives the store's own). Subjects count as UTF-8 bytes.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

ALL = ">"  # the filter that matches every subject

# nats-server's per-message overhead (server/filestore.go fileStoreMsgSize, memstore.go
# memStoreMsgSize): a file-store record has a 22-byte header (length, seq, ts, subject length)
# and an 8-byte hash, plus a 4-byte header length when the message has headers; a memory-store
# message counts 16 bytes (seq and timestamp).
FILE_MSG_OVERHEAD = 30
FILE_HDR_OVERHEAD = 4
MEMORY_MSG_OVERHEAD = 16


def file_msg_size(subject_len: int, hdr_len: int, data_len: int) -> int:
    """What one FileStore message counts in `StoreState.bytes` and against `max_bytes`
    (`subject_len` in UTF-8 bytes): 30 + subject + headers + payload, + 4 when headers."""
    return (FILE_MSG_OVERHEAD + subject_len + hdr_len + data_len
            + (FILE_HDR_OVERHEAD if hdr_len else 0))


def memory_msg_size(subject_len: int, hdr_len: int, data_len: int) -> int:
    """What one MemoryStore message counts: 16 + subject + headers + payload."""
    return MEMORY_MSG_OVERHEAD + subject_len + hdr_len + data_len


def subject_len(subject: str) -> int:
    """The subject's length in UTF-8 bytes (as nats-server counts it)."""
    return len(subject) if subject.isascii() else len(subject.encode())


def _message_factory() -> Callable[..., StoredMessage]:
    """A constructor equal to `StoredMessage(...)`, about 4x faster (stores build one per message
    read). A frozen dataclass's generated __init__ sets each field with object.__setattr__; this
    sets them on a same-layout twin class and then makes the object a StoredMessage: same type,
    fields, equality, hash and frozenness. Falls back to the plain constructor where changing
    __class__ is not allowed."""
    names = StoredMessage.__slots__

    class _Twin:
        __slots__ = names

    def new_message(seq: int, subject: str, hdr: bytes, data: bytes, ts: int,
                    ttl: int = 0) -> StoredMessage:
        # Any: the object changes class below (to StoredMessage), which no static type can say.
        m: Any = _Twin()
        m.seq = seq
        m.subject = subject
        m.hdr = hdr
        m.data = data
        m.ts = ts
        m.ttl = ttl
        m.__class__ = StoredMessage
        return m

    try:
        probe = new_message(1, "a", b"h", b"d", 2, 3)
        if type(probe) is StoredMessage and probe == StoredMessage(1, "a", b"h", b"d", 2, 3):
            return new_message
    except TypeError:  # pragma: no cover - an interpreter without compatible __class__ changes
        pass
    return StoredMessage  # pragma: no cover


class StoreError(Exception):
    """A store operation failed; the store is unchanged."""


class StoreFull(StoreError):
    """No space left (disk full, or the store's byte budget)."""


class CorruptRecord(StoreError):
    """A record failed its checksum; it is never served."""

    def __init__(self, seq: int, detail: str = "") -> None:
        super().__init__(f"record {seq} is damaged{': ' + detail if detail else ''}")
        self.seq = seq


@dataclass(frozen=True, slots=True)
class StoredMessage:
    seq: int
    subject: str
    hdr: bytes  # the raw NATS header block (b"NATS/1.0\r\n..."), b"" when none
    data: bytes
    ts: int  # nanoseconds since the Unix epoch, assigned by the caller
    ttl: int = 0  # nanoseconds; 0: none. The message expires at ts + ttl.

    @property
    def size(self) -> int:
        """The raw content: len(subject) + len(hdr) + len(data), with no per-message overhead.
        This is *not* what `StoreState.bytes` and `max_bytes` count: see `MessageStore.msg_size`
        (`file_msg_size` / `memory_msg_size`)."""
        return len(self.subject) + len(self.hdr) + len(self.data)


new_message = _message_factory()


@dataclass
class StoreConfig:
    """Limits a store enforces by dropping from the front (discard-old)."""

    name: str
    max_msgs: int = -1  # -1: unlimited
    max_bytes: int = -1
    max_age: int = 0  # nanoseconds; 0: unlimited
    max_msgs_per_subject: int = -1
    first_seq: int = 1  # the first sequence of an empty store
    # "none" or "s2": a FileStore compresses the segments it seals from then on (a MemoryStore
    # ignores it). Segments keep the form they were written in: a store reads both.
    compression: str = "none"


@dataclass
class StoreState:
    msgs: int = 0
    bytes: int = 0
    first_seq: int = 0  # the sequence the next message would get when empty (last_seq + 1)
    first_ts: int = 0
    last_seq: int = 0
    last_ts: int = 0
    num_deleted: int = 0  # interior gaps between first_seq and last_seq
    num_subjects: int = 0
    # Sequence ranges (inclusive) whose records failed verification and are not served.
    damaged: list[tuple[int, int]] = field(default_factory=list)


class SyncJob(ABC):
    """One group commit: built on the loop thread, run in a worker thread."""

    @abstractmethod
    def run(self) -> None:
        """Write and fdatasync what this job covers. Touches no store state. May raise OSError."""

    @property
    def small(self) -> bool:
        """One short write and one fdatasync, nothing else: cheap enough to run on the caller's
        thread when nothing else is syncing (the hand-off to a worker would cost as much)."""
        return False


class MessageStore(ABC):
    """One stream's messages. Sequences start at `config.first_seq` and only grow."""

    config: StoreConfig

    # Cheap accessors: O(1), no StoreState built. Equal to the StoreState fields of the same name.

    @property
    @abstractmethod
    def first_seq(self) -> int:
        """`state().first_seq`: the first live (or damaged) sequence, last_seq + 1 when empty."""

    @property
    @abstractmethod
    def last_seq(self) -> int:
        """`state().last_seq`: the last sequence used (stored or skipped)."""

    @property
    @abstractmethod
    def msgs(self) -> int:
        """`state().msgs`."""

    @property
    @abstractmethod
    def removals(self) -> int:
        """How many messages have left the store since it was opened, by any cause: remove,
        purge, skip_msgs, limits (also those enforced inside store_msg and update_config and at
        open), expiry, a failed sync withdrawing messages, a record found damaged on read. Only
        grows. Compaction, skip_msg and a `remove` of an already gone (or already counted
        damaged) sequence do not count. So between two moments `msgs` changes by exactly the
        messages stored minus the change of `removals`, and counts derived from the store (a
        consumer's pending) are stale exactly when `removals` moved. Implementations keep it as
        a plain attribute, so reading it after every store_msg costs nothing."""

    # Writing

    @abstractmethod
    def store_msg(self, subject: str, hdr: bytes, data: bytes, ts: int, ttl: int = 0) -> int:
        """Append with the next sequence; then enforce limits (drop oldest). Returns the seq.

        Raises StoreFull if it cannot be stored (nothing changes then)."""

    @abstractmethod
    def skip_msg(self, ts: int) -> int:
        """Use the next sequence without storing a message (nats-server's SkipMsg, for a message
        nobody is interested in). Returns that seq; last_seq and last_ts become (seq, ts). The
        seq then looks exactly like a removed message: a deleted interior sequence, or, when
        the store holds no message, first_seq moves past it. No limits are enforced. In a
        FileStore the next sync makes it durable (a marker record, no payload): after a restart
        the sequence stays used."""

    @abstractmethod
    def skip_msgs(self, first_seq: int) -> None:
        """Make `first_seq` the next sequence (store must be empty or this only moves forward:
        everything below it is purged)."""

    @abstractmethod
    def remove(self, seq: int, erase: bool = False) -> bool:
        """Delete one message; `erase` overwrites its bytes on disk. False if not present."""

    @abstractmethod
    def purge(self, subject: str | None = None, seq: int = 0, keep: int = 0) -> int:
        """Remove messages, optionally only those matching `subject` (wildcards allowed), only
        those below `seq` (exclusive), or all but the newest `keep`. Returns how many.

        A full purge keeps last_seq: the next message gets last_seq + 1."""

    @abstractmethod
    def expire(self, now: int) -> int:
        """Remove messages past max_age or their ttl at time `now` (ns). Returns how many."""

    @abstractmethod
    def update_config(self, config: StoreConfig) -> None:
        """New limits; enforced at once."""

    @abstractmethod
    def truncate(self, last_seq: int) -> None:
        """Remove every message with a sequence above `last_seq` and make `last_seq` the
        store's last sequence (even when that message itself was deleted), as if nothing after
        it had ever been stored. The next store_msg gets last_seq + 1. `last_seq` below the
        store's first sequence - 1 is an error (StoreError), and so is one above the last
        sequence (a store never moves its numbering forward this way: see skip_msgs);
        `last_seq` equal to the last sequence changes nothing. Durable once the next sync
        completes (begin_sync/finish_sync), and safe under power loss at any point: after a
        crash the store comes back either truncated or not, never with a damaged middle.

        `last_ts` becomes the timestamp of the newest message the store still holds (0 when it
        holds none): the timestamp of `last_seq` itself is not kept once that message is gone.
        The removed messages count in `removals`. (The use: a Raft-replicated stream writes its
        store at apply time; after a restart it truncates the store back to the state of the
        last snapshot and applies the log again.)"""

    # Reading

    @abstractmethod
    def load(self, seq: int) -> StoredMessage | None:
        """The message at `seq`, or None if there is none. Raises CorruptRecord if damaged."""

    @abstractmethod
    def load_next(self, start_seq: int, filters: tuple[str, ...] = (ALL,)) -> StoredMessage | None:
        """The first message with seq >= start_seq whose subject matches any filter."""

    @abstractmethod
    def load_batch(self, start_seq: int, filters: tuple[str, ...] = (ALL,), max_msgs: int = 256,
                   max_bytes: int = 0) -> list[StoredMessage]:
        """The next messages with seq >= start_seq matching any filter, in order: exactly what
        calling `load_next` repeatedly returns (`load_next(start_seq, filters)`, then
        `load_next(prev.seq + 1, filters)`, ...), up to the first None, and at most `max_msgs`
        of them (none when max_msgs <= 0). With max_bytes > 0 the batch also ends before the
        message that would take the sum of their `StoredMessage.size` (subject + headers +
        payload, not `msg_size`) past max_bytes; the first message comes whatever its size.
        Nothing is skipped: a batch is always a prefix of what load_next would walk through.

        Damage (FileStore; a MemoryStore has none) is met as those repeated calls meet it, the
        first CorruptRecord ending the batch: the batch holds the messages before the damaged
        record (a known damaged range at or after start_seq, or a record that fails
        verification as it is read, which is then marked damaged as `load` marks it), and a
        call whose first candidate is damaged raises CorruptRecord. So the reader's next call,
        from after the batch's last message, raises it with the damaged seq. Records past the
        limits are not read, so damage there is found by a later call.

        Equal to the repeated calls, but much cheaper: filters are prepared once, and a
        FileStore reads neighbouring records with one read, decides which subjects match once
        per segment and skips segments holding no matching subject."""

    @abstractmethod
    def load_last(self, filters: tuple[str, ...] = (ALL,)) -> StoredMessage | None:
        """The newest message whose subject matches any filter."""

    @abstractmethod
    def last_seq_for(self, subject: str) -> int:
        """The newest sequence stored for this literal subject; 0 if none."""

    @abstractmethod
    def num_pending(self, start_seq: int, filters: tuple[str, ...] = (ALL,),
                    last_per_subject: bool = False) -> int:
        """How many messages with seq >= start_seq match; with last_per_subject, how many
        distinct matching subjects have their newest message at or after start_seq."""

    @abstractmethod
    def state(self) -> StoreState:
        ...

    @abstractmethod
    def msg_size(self, subject: str, hdr: bytes, data: bytes) -> int:
        """What this message would count in `StoreState.bytes` (and against `max_bytes`) in this
        store: `file_msg_size` or `memory_msg_size`."""

    @abstractmethod
    def subjects(self, filter: str = ALL) -> dict[str, int]:
        """Message count per subject matching `filter`."""

    @abstractmethod
    def deleted(self) -> list[int]:
        """Interior deleted sequences (between first_seq and last_seq), ascending."""

    # Durability and lifecycle

    @abstractmethod
    def begin_sync(self) -> SyncJob | None:
        """Capture everything changed so far for one fsync; None when nothing needs syncing."""

    @abstractmethod
    def finish_sync(self, job: SyncJob) -> None:
        """After `job.run()` returned: record durability, release what waited for it."""

    @abstractmethod
    def close(self) -> None:
        """Flush and sync everything, then release files."""

    @abstractmethod
    def destroy(self) -> None:
        """Close and delete all of the store's data."""


def truncation_needed(store: MessageStore, last_seq: int) -> bool:
    """Check `truncate`'s argument: False when `last_seq` is already the last sequence (nothing
    to do), StoreError when it lies below first_seq - 1 or beyond last_seq."""
    if last_seq == store.last_seq:
        return False
    if last_seq > store.last_seq:
        raise StoreError(f"cannot truncate to {last_seq}: beyond the last sequence "
                         f"{store.last_seq}")
    if last_seq < store.first_seq - 1:
        raise StoreError(f"cannot truncate to {last_seq}: below the first sequence "
                         f"{store.first_seq} - 1")
    return True
