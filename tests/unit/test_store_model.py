"""Model test: FileStore, MemoryStore and a trivial dict model run the same operations.

The two stores count bytes differently (nats-server's file and memory overheads), so under a
`max_bytes` limit they may drop different messages: each is compared with its own model, which
differs only in how it sizes a message. Both models also count removals (every message that left,
by any cause), which each store's `removals` must match, and the cheap accessors (first_seq,
last_seq, msgs) must always equal the store's StoreState.

`load_batch` is compared with the model's (a prefix of what repeated `load_next` returns), also
where the FileStore holds damage: after a crash (damaged ranges found at open) and when a record
rots on disk while the store is open (found only when a read gets to it), readers get what
precedes the damage and then CorruptRecord, exactly as `DamagedView` describes.

Besides comparing every answer, the machine syncs, crashes (the FileStore is abandoned without
close, then `simulate_power_loss` rewrites its files as a power cut would) and reopens:

* with the exact cut at the durable length, the reopened store equals the model as of the last
  sync (with the current limits applied, as opening enforces them);
* with torn or partially zeroed unsynced tails, it may hold any legal mix: every synced message
  not removed since is there, byte for byte; nothing is there that was never stored; damage is
  only ever reported above the last synced sequence.
"""

from __future__ import annotations

import copy
import errno
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from hypothesis import HealthCheck, Phase, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from storage import (
    CorruptRecord,
    FileStore,
    FileStoreOptions,
    MemoryStore,
    StoreConfig,
    StoredMessage,
    durable,
    record,
)
from storage.store import file_msg_size, memory_msg_size
from storage.subjects import normalize, subject_matches

SUBJECTS = ["a", "a.b", "a.c", "b.x", "b.y.z", "b.ü"]  # "ü": 2 bytes in UTF-8
FILTERS = [">", "a", "a.*", "b.>", "*.x", "a.b", "zz", "a.>"]
FILTER_SETS = st.lists(st.sampled_from(FILTERS), min_size=1, max_size=2).map(tuple)
BATCH_MSGS = st.sampled_from([0, 1, 2, 3, 7, 256])
BATCH_BYTES = st.sampled_from([0, 0, 1, 40, 150, 1000])
# Reads against a store with damage: (kind, how far before the damage to start, filters,
# max_msgs, max_bytes).
PROBES = st.lists(st.tuples(st.sampled_from(["batch", "batch", "next", "load"]),
                            st.integers(-2, 12), FILTER_SETS, BATCH_MSGS, BATCH_BYTES),
                  max_size=5)
OPTIONS = FileStoreOptions(segment_bytes=600, segment_msgs=6, cache_bytes=256, flush_bytes=200,
                           progress_every=3)


def matches(filters: tuple[str, ...], subject: str) -> bool:
    norm = normalize(filters)
    return norm is None or any(subject_matches(f, subject) for f in norm)


def file_size(m: StoredMessage) -> int:
    return file_msg_size(len(m.subject.encode()), len(m.hdr), len(m.data))


def memory_size(m: StoredMessage) -> int:
    return memory_msg_size(len(m.subject.encode()), len(m.hdr), len(m.data))


@dataclass
class Model:
    """The obvious implementation: a dict of messages, everything computed by brute force."""

    config: StoreConfig
    size_of: Callable[[StoredMessage], int] = file_size
    msgs: dict[int, StoredMessage] = field(default_factory=dict)
    last_seq: int = 0
    last_ts: int = 0
    removals: int = 0

    def drop(self, seq: int) -> None:
        del self.msgs[seq]
        self.removals += 1

    def first(self) -> int:
        return min(self.msgs) if self.msgs else self.last_seq + 1

    def store(self, subject: str, hdr: bytes, data: bytes, ts: int, ttl: int) -> int:
        seq = self.last_seq + 1
        self.msgs[seq] = StoredMessage(seq, subject, hdr, data, ts, ttl)
        self.last_seq, self.last_ts = seq, ts
        self.enforce([subject])
        return seq

    def enforce(self, subjects: list[str] | None = None) -> None:
        cfg = self.config
        if cfg.max_msgs_per_subject > 0:
            for subject in subjects or {m.subject for m in self.msgs.values()}:
                seqs = sorted(s for s, m in self.msgs.items() if m.subject == subject)
                for seq in seqs[:max(0, len(seqs) - cfg.max_msgs_per_subject)]:
                    self.drop(seq)
        while cfg.max_msgs > 0 and len(self.msgs) > cfg.max_msgs:
            self.drop(min(self.msgs))
        while cfg.max_bytes > 0 and self.bytes() > cfg.max_bytes:
            self.drop(min(self.msgs))

    def bytes(self) -> int:
        return sum(self.size_of(m) for m in self.msgs.values())

    def remove(self, seq: int) -> bool:
        if seq not in self.msgs:
            return False
        self.drop(seq)
        return True

    def purge(self, subject: str | None, seq: int, keep: int) -> int:
        victims = sorted(s for s, m in self.msgs.items() if matches((subject or ">",), m.subject))
        if keep > 0:
            victims = victims[:max(0, len(victims) - keep)]
        if seq > 0:
            victims = [s for s in victims if s < seq]
        for s in victims:
            self.drop(s)
        return len(victims)

    def skip(self, first_seq: int) -> None:
        self.removals += len(self.msgs)
        self.msgs.clear()
        self.last_seq = first_seq - 1

    def skip_msg(self, ts: int) -> int:
        self.last_seq += 1
        self.last_ts = ts
        return self.last_seq

    def truncate(self, last_seq: int) -> None:
        if last_seq == self.last_seq:
            return
        for seq in [s for s in self.msgs if s > last_seq]:
            self.drop(seq)
        self.last_seq = last_seq
        self.last_ts = self.msgs[max(self.msgs)].ts if self.msgs else 0

    def expire(self, now: int) -> int:
        age = self.config.max_age
        victims = [s for s, m in self.msgs.items()
                   if (age > 0 and m.ts + age <= now) or (m.ttl and m.ts + m.ttl <= now)]
        for s in victims:
            self.drop(s)
        return len(victims)

    def load_next(self, start: int, filters: tuple[str, ...]) -> StoredMessage | None:
        for seq in sorted(self.msgs):
            if seq >= start and matches(filters, self.msgs[seq].subject):
                return self.msgs[seq]
        return None

    def load_batch(self, start: int, filters: tuple[str, ...], max_msgs: int,
                   max_bytes: int) -> list[StoredMessage]:
        return DamagedView(self).load_batch(start, filters, max_msgs, max_bytes)

    def load_last(self, filters: tuple[str, ...]) -> StoredMessage | None:
        found = [s for s, m in self.msgs.items() if matches(filters, m.subject)]
        return self.msgs[max(found)] if found else None

    def last_seq_for(self, subject: str) -> int:
        return max((s for s, m in self.msgs.items() if m.subject == subject), default=0)

    def num_pending(self, start: int, filters: tuple[str, ...], last_per_subject: bool) -> int:
        if last_per_subject:
            lasts: dict[str, int] = {}
            for s, m in self.msgs.items():
                if matches(filters, m.subject):
                    lasts[m.subject] = max(lasts.get(m.subject, 0), s)
            return sum(1 for s in lasts.values() if s >= start)
        return sum(1 for s, m in self.msgs.items() if s >= start and matches(filters, m.subject))

    def subjects(self, filt: str) -> dict[str, int]:
        out: dict[str, int] = {}
        for m in self.msgs.values():
            if matches((filt,), m.subject):
                out[m.subject] = out.get(m.subject, 0) + 1
        return out

    def deleted(self) -> list[int]:
        if not self.msgs:
            return []
        return [s for s in range(self.first(), self.last_seq + 1) if s not in self.msgs]

    def summary(self) -> tuple:
        first = self.first()
        return (len(self.msgs), self.bytes(), first,
                self.msgs[first].ts if self.msgs else 0, self.last_seq, self.last_ts,
                (self.last_seq - first + 1 - len(self.msgs)) if self.msgs else 0,
                len({m.subject for m in self.msgs.values()}))

    @classmethod
    def of_store(cls, store: FileStore, config: StoreConfig) -> Model:
        st_ = store.state()
        msgs = {}
        for seq in range(st_.first_seq, st_.last_seq + 1):
            msg = store.load(seq)
            if msg is not None:
                msgs[seq] = msg
        return cls(config, file_size, msgs, st_.last_seq, st_.last_ts, store.removals)


@dataclass
class DamagedView:
    """What a store's reads must answer when it holds damage. `model.msgs`: the messages it can
    serve; `damaged`: ranges it knows are damaged; `rotten`: sequences whose records fail
    verification when read, which the store does not know yet. A read that gets to a rotten
    record finds it (it becomes damaged); answers are messages, lists, None, or ("corrupt", seq)
    for a CorruptRecord."""

    model: Model
    damaged: list[tuple[int, int]] = field(default_factory=list)
    rotten: set[int] = field(default_factory=set)

    def _stop(self, start: int) -> int | None:
        return min((max(lo, start) for lo, hi in self.damaged if hi >= start), default=None)

    def _find(self, seq: int) -> tuple[str, int]:
        self.rotten.discard(seq)
        self.damaged.append((seq, seq))
        del self.model.msgs[seq]
        return ("corrupt", seq)

    def load(self, seq: int):
        if any(lo <= seq <= hi for lo, hi in self.damaged):
            return ("corrupt", seq)
        if seq in self.rotten:
            return self._find(seq)
        return self.model.msgs.get(seq)

    def load_next(self, start: int, filters: tuple[str, ...]):
        stop = self._stop(start)
        found = self.model.load_next(start, filters)
        if stop is not None and (found is None or stop < found.seq):
            return ("corrupt", stop)
        if found is not None and found.seq in self.rotten:
            return self._find(found.seq)
        return found

    def load_batch(self, start: int, filters: tuple[str, ...], max_msgs: int, max_bytes: int):
        """A prefix of what repeated load_next returns: at most max_msgs, ending before the
        message that would take the sum of sizes past max_bytes (the first always counts),
        before damage (raising when nothing precedes it). The budget is checked before a
        message is read, so a message it leaves out is not found rotten."""
        if max_msgs <= 0:
            return []
        out: list[StoredMessage] = []
        used = 0
        stop = self._stop(start)
        for seq in sorted(self.model.msgs):
            msg = self.model.msgs[seq]
            if seq < start or not matches(filters, msg.subject):
                continue
            if len(out) >= max_msgs or (stop is not None and seq >= stop):
                break
            if max_bytes > 0 and out and used + msg.size > max_bytes:
                return out
            if seq in self.rotten:
                found = self._find(seq)
                return out or found
            used += msg.size
            out.append(msg)
        if not out and stop is not None:
            return ("corrupt", stop)
        return out


def answer(read: Callable[..., object], *args) -> object:
    try:
        return read(*args)
    except CorruptRecord as e:
        return ("corrupt", e.seq)


def by_load_next(store, start: int, filters: tuple[str, ...], max_msgs: int,
                 max_bytes: int) -> list[StoredMessage]:
    """load_batch's definition: load_next over and over (on a store without damage)."""
    out: list[StoredMessage] = []
    used = 0
    while len(out) < max_msgs:
        msg = store.load_next(out[-1].seq + 1 if out else start, filters)
        if msg is None or (max_bytes > 0 and out and used + msg.size > max_bytes):
            break
        used += msg.size
        out.append(msg)
    return out


def probe(store, view: DamagedView, probes) -> None:
    """Run reads against a store with damage and its DamagedView; the answers must agree."""
    anchor = min([lo for lo, _ in view.damaged] + list(view.rotten))
    for kind, back, filters, max_msgs, max_bytes in probes:
        start = anchor - back
        if kind == "load":
            got, want = answer(store.load, start), view.load(start)
        elif kind == "next":
            got = answer(store.load_next, start, filters)
            want = view.load_next(start, filters)
        else:
            got = answer(store.load_batch, start, filters, max_msgs, max_bytes)
            want = view.load_batch(start, filters, max_msgs, max_bytes)
        assert got == want, (kind, start, filters, max_msgs, max_bytes, view.damaged)
        if isinstance(got, tuple):
            event(f"damaged read: {kind} raised")
        elif kind == "batch" and got and view._stop(got[-1].seq + 1) is not None:
            event("damaged read: batch ended before damage")


def _enospc(*args):
    raise OSError(errno.ENOSPC, "No space left on device")


def summary(store) -> tuple:
    s = store.state()
    return (s.msgs, s.bytes, s.first_seq, s.first_ts, s.last_seq, s.last_ts, s.num_deleted,
            s.num_subjects)


def flip(path: str, offset: int, mask: int) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        byte = f.read(1)[0]
        f.seek(offset)
        f.write(bytes([byte ^ mask]))


def erased_on_disk(directory: str) -> set[int]:
    """The sequences of the ERASED records in a store's segment files."""
    found = set()
    for name in os.listdir(directory):
        if name.endswith(".seg"):
            with open(os.path.join(directory, name), "rb") as f:
                buf = f.read()
            found.update(r.seq for r in record.scan(buf, record.SEGMENT_HEADER_SIZE)
                         if isinstance(r, record.Record) and r.kind == record.KIND_ERASED)
    return found


def memory_store_like(model: Model) -> tuple[MemoryStore, Model]:
    """A MemoryStore holding exactly the model's messages and numbering, and its own model."""
    ms = MemoryStore(replace(model.config, max_msgs=-1, max_bytes=-1, max_msgs_per_subject=-1))
    if model.msgs:
        ms.skip_msgs(min(model.msgs))
        for seq in range(min(model.msgs), model.last_seq + 1):
            m = model.msgs.get(seq)
            if m is None:
                assert ms.skip_msg(model.last_ts) == seq  # a hole
            else:
                assert ms.store_msg(m.subject, m.hdr, m.data, m.ts, m.ttl) == seq
    elif model.last_seq:
        ms.skip_msgs(model.last_seq)
        assert ms.skip_msg(model.last_ts) == model.last_seq
    # A message counts fewer bytes here than in a FileStore: these limits remove nothing.
    ms.update_config(model.config)
    mmodel = Model(model.config, memory_size, dict(model.msgs), model.last_seq, model.last_ts,
                   ms.removals)
    return ms, mmodel


class StoreMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.tmp = tempfile.mkdtemp(prefix="store-model-")
        self.journal = os.path.join(self.tmp, "journal")
        durable.set_journal(self.journal)
        self.dir = os.path.join(self.tmp, "store")
        self.config = StoreConfig("model")
        self.fs = FileStore(self.dir, self.config, OPTIONS)
        self.ms = MemoryStore(self.config)
        self.model = Model(self.config, file_size)  # the FileStore's
        self.mmodel = Model(self.config, memory_size)  # the MemoryStore's
        self.synced = copy.deepcopy(self.model)
        self.stored_since_sync: dict[int, StoredMessage] = {}
        self.torn = False  # a power cut kept part of an unsynced tail
        self.clock = 1_000_000

    def teardown(self) -> None:
        try:
            self.fs.close()
        finally:
            durable.set_journal(None)
            shutil.rmtree(self.tmp, ignore_errors=True)

    def _pairs(self):
        return ((self.fs, self.model), (self.ms, self.mmodel))

    # Writing

    @rule(subject=st.sampled_from(SUBJECTS), size=st.integers(0, 60),
          ttl=st.sampled_from([0, 0, 0, 30, 200]), with_hdr=st.booleans(),
          tick=st.integers(0, 20))
    def store(self, subject, size, ttl, with_hdr, tick):
        self.clock += tick
        hdr = b"NATS/1.0\r\nk: v\r\n\r\n" if with_hdr else b""
        data = bytes((self.clock + i) % 251 for i in range(size))
        msg = None
        for store, model in self._pairs():
            seq = model.store(subject, hdr, data, self.clock, ttl)
            assert store.store_msg(subject, hdr, data, self.clock, ttl) == seq
            msg = StoredMessage(seq, subject, hdr, data, self.clock, ttl)
            assert store.msg_size(subject, hdr, data) == model.size_of(msg)
        self.stored_since_sync[msg.seq] = msg

    @rule(count=st.integers(1, 40), subject=st.sampled_from(SUBJECTS))
    def store_many(self, count, subject):
        for i in range(count):
            self.store(subject, 20, 0, i % 2 == 1, 1)

    @rule(count=st.integers(1, 4), tick=st.integers(0, 20))
    def skip_msg(self, count, tick):
        """Sequences used without a message (interest retention, nobody interested)."""
        for _ in range(count):
            self.clock += tick
            for store, model in self._pairs():
                assert store.skip_msg(self.clock) == model.skip_msg(self.clock)

    @rule(back=st.integers(0, 30), erase=st.booleans())
    def remove(self, back, erase):
        seq = self.model.last_seq - back
        for store, model in self._pairs():
            assert store.remove(seq, erase=erase) == model.remove(seq)

    @rule(subject=st.sampled_from([None, *FILTERS]), back=st.integers(0, 40),
          use_seq=st.booleans(), keep=st.sampled_from([0, 0, 1, 3, 10]))
    def purge(self, subject, back, use_seq, keep):
        seq = max(1, self.model.last_seq - back) if use_seq else 0
        for store, model in self._pairs():
            assert store.purge(subject, seq, keep) == model.purge(subject, seq, keep)

    @rule(ahead=st.integers(1, 30))
    def skip(self, ahead):
        first = self.model.last_seq + ahead
        for store, model in self._pairs():
            model.skip(first)
            store.skip_msgs(first)

    @rule(back=st.integers(0, 45))
    def truncate(self, back):
        """Back to an earlier sequence (a Raft-replicated stream after a restart), across
        segments, deletions, skips and ttls. Then a sync, which the contract asks for before the
        truncation counts as durable (the crash rule compares with the last sync)."""
        target = max(self.model.last_seq - back, self.model.first() - 1)
        if target < self.model.last_seq:
            event("truncate: cut")
        for store, model in self._pairs():
            model.truncate(target)
            store.truncate(target)
        self._sync()

    @rule(max_msgs=st.sampled_from([-1, -1, 5, 20]), max_bytes=st.sampled_from([-1, -1, 400, 2500]),
          per_subject=st.sampled_from([-1, -1, 1, 3]), max_age=st.sampled_from([0, 0, 100, 500]))
    def limits(self, max_msgs, max_bytes, per_subject, max_age):
        self.config = StoreConfig("model", max_msgs=max_msgs, max_bytes=max_bytes,
                                  max_age=max_age, max_msgs_per_subject=per_subject)
        for store, model in self._pairs():
            model.config = self.config
            model.enforce()
            store.update_config(self.config)

    @rule(tick=st.integers(0, 300))
    def expire(self, tick):
        self.clock += tick
        for store, model in self._pairs():
            assert store.expire(self.clock) == model.expire(self.clock)

    # Reading

    @rule(back=st.integers(-2, 50))
    def load(self, back):
        seq = self.model.last_seq - back
        for store, model in self._pairs():
            assert store.load(seq) == model.msgs.get(seq)

    @rule(back=st.integers(-2, 60), filt=st.sampled_from(FILTERS))
    def load_next(self, back, filt):
        start = self.model.last_seq - back
        for store, model in self._pairs():
            assert store.load_next(start, (filt,)) == model.load_next(start, (filt,))

    @rule(back=st.integers(-2, 60), filters=FILTER_SETS, max_msgs=BATCH_MSGS,
          max_bytes=BATCH_BYTES)
    def load_batch(self, back, filters, max_msgs, max_bytes):
        start = self.model.last_seq - back
        for store, model in self._pairs():
            got = store.load_batch(start, filters, max_msgs, max_bytes)
            assert got == model.load_batch(start, filters, max_msgs, max_bytes)
            assert got == by_load_next(store, start, filters, max_msgs, max_bytes)

    @rule(data=st.data(), probes=PROBES.filter(bool))
    def rot(self, data, probes):
        """A record of a sealed segment rots on disk while the store is open. The store finds
        out only when a read gets to it: readers get what precedes it, then CorruptRecord."""
        entries = [(seg, i) for seg in self.fs._segs if seg.file is None and not seg.compacting
                   for i in seg.live_entries()]
        if not entries:
            event("rot: no sealed segment")
            return
        seg, i = data.draw(st.sampled_from(entries))
        seq, off = seg.seqs[i], seg.offs[i]
        with open(seg.path, "rb") as f:
            f.seek(off)
            raw = f.read(seg.sizes[i] + record.READ_SLACK)
        length = record.header_at(raw, 0, len(raw)).length
        pos = data.draw(st.integers(off, off + length - 1), label="byte")
        mask = data.draw(st.integers(1, 255), label="mask")
        flip(seg.path, pos, mask)
        self.fs._block = None  # bytes read before the rot may be kept: rot found on disk
        try:
            view = DamagedView(copy.deepcopy(self.model), [], {seq})
            probe(self.fs, view, probes)
            assert self.fs.state().damaged == sorted(view.damaged)
        finally:
            flip(seg.path, pos, mask)  # repaired on disk, and the loss accepted below
            self.fs._block = None
        for store, model in self._pairs():
            assert store.remove(seq)
            model.remove(seq)
        assert self.fs.state().damaged == []

    @rule(filters=st.lists(st.sampled_from(FILTERS), min_size=1, max_size=2))
    def load_last(self, filters):
        for store, model in self._pairs():
            assert store.load_last(tuple(filters)) == model.load_last(tuple(filters))

    @rule(subject=st.sampled_from(SUBJECTS))
    def last_seq_for(self, subject):
        for store, model in self._pairs():
            assert store.last_seq_for(subject) == model.last_seq_for(subject)

    @rule(back=st.integers(-2, 60), filt=st.sampled_from(FILTERS), lps=st.booleans())
    def num_pending(self, back, filt, lps):
        start = self.model.last_seq - back
        for store, model in self._pairs():
            expected = model.num_pending(start, (filt,), lps)
            assert store.num_pending(start, (filt,), last_per_subject=lps) == expected

    @rule(filt=st.sampled_from(FILTERS))
    def subjects(self, filt):
        for store, model in self._pairs():
            assert store.subjects(filt) == model.subjects(filt)

    @invariant()
    def same_state(self):
        for store, model in self._pairs():
            assert summary(store) == model.summary()
            st_ = store.state()
            assert (store.first_seq, store.last_seq, store.msgs) == (
                st_.first_seq, st_.last_seq, st_.msgs)
            assert store.removals == model.removals
        assert self.fs.state().damaged == []

    @invariant()
    def same_deleted(self):
        for store, model in self._pairs():
            assert store.deleted() == model.deleted()

    # Durability

    def _sync(self) -> None:
        job = self.fs.begin_sync()
        if job is not None:
            job.run()
            self.fs.finish_sync(job)
        self._mark_synced()

    def _mark_synced(self) -> None:
        self.synced = copy.deepcopy(self.model)
        self.stored_since_sync = {}

    @rule()
    def sync(self):
        self._sync()
        self._check_files()

    def _check_files(self) -> None:
        """Once synced, every segment file parses as records end to end (compaction copies
        records by their computed lengths: a wrong one leaves junk between them), unless a
        power cut tore a tail, which the store tolerates."""
        if self.torn:
            return
        for name in os.listdir(self.dir):
            if name.endswith(".seg"):
                with open(os.path.join(self.dir, name), "rb") as f:
                    buf = f.read()
                damage = [d for d in record.scan(buf, record.SEGMENT_HEADER_SIZE)
                          if isinstance(d, record.Damage)]
                assert not damage, (name, damage)

    @rule(subject=st.sampled_from(SUBJECTS), skip=st.booleans())
    def sync_while_storing(self, subject, skip):
        """Changes made while a job runs are not covered by it (but by the next one)."""
        job = self.fs.begin_sync()
        snapshot = copy.deepcopy(self.model)
        if skip:
            self.skip_msg(1, 1)
        else:
            self.store(subject, 10, 0, False, 1)
        since = dict(self.stored_since_sync)
        if job is not None:
            job.run()
            self.fs.finish_sync(job)
        self.synced = snapshot
        self.stored_since_sync = since

    @rule(call=st.sampled_from(["pwrite", "fdatasync"]))
    def failed_sync(self, call):
        """A sync fails (disk full): the messages it covered are withdrawn, the rest retried."""
        job = self.fs.begin_sync()
        if job is None:
            return
        real = getattr(os, call)
        setattr(os, call, _enospc)  # storage.durable calls os.pwrite / os.fdatasync
        try:
            job.run()
            failed = False
        except OSError:
            failed = True
        finally:
            setattr(os, call, real)
        self.fs.finish_sync(job)
        if not failed:  # the job had nothing to write
            self._mark_synced()
            return
        for seq in [s for s in self.model.msgs if s > self.synced.last_seq]:
            for store, model in self._pairs():
                if model.remove(seq) and store is self.ms:
                    self.ms.remove(seq)

    @rule(tail=st.sampled_from(["cut", "cut", "tear", "pages"]), seed=st.integers(0, 1 << 16),
          phase=st.sampled_from(["idle", "begun", "ran"]), probes=PROBES)
    def crash(self, tail, seed, phase, probes):
        """SIGKILL-like abandon (possibly mid-sync), power loss, reopen."""
        if phase != "idle":
            job = self.fs.begin_sync()
            if phase == "ran":
                snapshot = copy.deepcopy(self.model)
                if job is not None:
                    job.run()
                self.synced = snapshot
                self.stored_since_sync = {}
        self.fs._release()  # the process dies: user-space buffers are gone, nothing is closed
        durable.simulate_power_loss(self.journal, self.dir, tail=tail, seed=seed)
        self.torn = self.torn or tail != "cut"
        expected = copy.deepcopy(self.synced)
        expected.config = self.config
        for seq in erased_on_disk(self.dir):
            # A failed sync overwrote the record in place (erase) but did not sync it: those
            # bytes may survive a power cut, and the removal with them. Legal either way.
            expected.msgs.pop(seq, None)
        self.fs = FileStore(self.dir, self.config, OPTIONS)
        expected.enforce()
        if tail == "cut":
            assert self.fs.state().damaged == []
            assert summary(self.fs) == expected.summary()
            assert Model.of_store(self.fs, self.config).msgs == expected.msgs
            assert self.fs.deleted() == expected.deleted()
            # Limits applied at open count as removals of the reopened store.
            assert self.fs.removals == expected.removals - self.synced.removals
        else:
            self._check_legal(expected, probes)
        self._resync_models()

    def _resync_models(self) -> None:
        """After a reopen: the models restart from what the FileStore holds."""
        self.model = Model.of_store(self.fs, self.config)
        self.ms, self.mmodel = memory_store_like(self.model)
        self._sync()  # limits enforced at open are only in memory until the next sync

    def _check_legal(self, expected: Model, probes) -> None:
        damaged = self.fs.state().damaged
        if damaged:  # reads stop at the damage found at open
            event("crash: damage found at open")
            st_ = self.fs.state()
            served = {seq: self.fs.load(seq) for seq in range(st_.first_seq, st_.last_seq + 1)
                      if not any(lo <= seq <= hi for lo, hi in damaged)}
            view = DamagedView(Model(self.config, file_size,
                                     {s: m for s, m in served.items() if m is not None},
                                     st_.last_seq, st_.last_ts), list(damaged))
            probe(self.fs, view, probes)
            assert self.fs.state().damaged == damaged
        for lo, hi in self.fs.state().damaged:
            assert lo > self.synced.last_seq, "damage reported in synced data"
            for seq in range(lo, hi + 1):
                self.fs.remove(seq)  # accept it, so the models can continue
        now = Model.of_store(self.fs, self.config)
        assert now.last_seq >= expected.last_seq
        for seq, msg in expected.msgs.items():
            if seq in self.model.msgs:  # not removed since the sync
                assert now.msgs.get(seq) == msg, f"synced message {seq} lost or changed"
        for seq, msg in now.msgs.items():
            assert msg in (expected.msgs.get(seq), self.stored_since_sync.get(seq)), seq

    @rule()
    def close_and_reopen(self):
        self.fs.close()
        self.fs = FileStore(self.dir, self.config, OPTIONS)
        assert self.fs.removals == 0  # limits were enforced before the close already
        self.model.removals = 0
        self._sync()
        self._check_files()


StoreMachine.TestCase.settings = settings(
    max_examples=int(os.environ.get("STORE_MODEL_EXAMPLES", "300")), stateful_step_count=50,
    deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink])
TestStoreModel = StoreMachine.TestCase
