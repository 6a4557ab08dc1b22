"""Model test: FileStore, MemoryStore and a trivial dict model run the same operations.

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
import os
import shutil
import tempfile
from dataclasses import dataclass, field, replace

from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from storage import FileStore, FileStoreOptions, MemoryStore, StoreConfig, StoredMessage, durable
from storage.subjects import normalize, subject_matches

SUBJECTS = ["a", "a.b", "a.c", "b.x", "b.y.z"]
FILTERS = [">", "a", "a.*", "b.>", "*.x", "a.b", "zz", "a.>"]
OPTIONS = FileStoreOptions(segment_bytes=600, segment_msgs=6, cache_bytes=256, flush_bytes=200,
                           progress_every=3)


def matches(filters: tuple[str, ...], subject: str) -> bool:
    norm = normalize(filters)
    return norm is None or any(subject_matches(f, subject) for f in norm)


@dataclass
class Model:
    """The obvious implementation: a dict of messages, everything computed by brute force."""

    config: StoreConfig
    msgs: dict[int, StoredMessage] = field(default_factory=dict)
    last_seq: int = 0
    last_ts: int = 0

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
                    del self.msgs[seq]
        while cfg.max_msgs > 0 and len(self.msgs) > cfg.max_msgs:
            del self.msgs[min(self.msgs)]
        while cfg.max_bytes > 0 and self.bytes() > cfg.max_bytes:
            del self.msgs[min(self.msgs)]

    def bytes(self) -> int:
        return sum(m.size for m in self.msgs.values())

    def remove(self, seq: int) -> bool:
        return self.msgs.pop(seq, None) is not None

    def purge(self, subject: str | None, seq: int, keep: int) -> int:
        victims = sorted(s for s, m in self.msgs.items() if matches((subject or ">",), m.subject))
        if keep > 0:
            victims = victims[:max(0, len(victims) - keep)]
        if seq > 0:
            victims = [s for s in victims if s < seq]
        for s in victims:
            del self.msgs[s]
        return len(victims)

    def skip(self, first_seq: int) -> None:
        self.msgs.clear()
        self.last_seq = first_seq - 1

    def expire(self, now: int) -> int:
        age = self.config.max_age
        victims = [s for s, m in self.msgs.items()
                   if (age > 0 and m.ts + age <= now) or (m.ttl and m.ts + m.ttl <= now)]
        for s in victims:
            del self.msgs[s]
        return len(victims)

    def load_next(self, start: int, filters: tuple[str, ...]) -> StoredMessage | None:
        for seq in sorted(self.msgs):
            if seq >= start and matches(filters, self.msgs[seq].subject):
                return self.msgs[seq]
        return None

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
        return cls(config, msgs, st_.last_seq, st_.last_ts)


def summary(store) -> tuple:
    s = store.state()
    return (s.msgs, s.bytes, s.first_seq, s.first_ts, s.last_seq, s.last_ts, s.num_deleted,
            s.num_subjects)


def memory_store_like(model: Model) -> MemoryStore:
    """A MemoryStore holding exactly the model's messages and numbering."""
    ms = MemoryStore(replace(model.config, max_msgs=-1, max_bytes=-1, max_msgs_per_subject=-1))
    if not model.msgs:
        ms.skip_msgs(model.last_seq + 1)
        ms._last_ts = model.last_ts  # numbering only; no message carries it
        ms.update_config(model.config)
        return ms
    ms.skip_msgs(min(model.msgs))
    for seq in range(min(model.msgs), model.last_seq + 1):
        m = model.msgs.get(seq)
        if m is None:
            ms.remove(ms.store_msg("zz.hole", b"", b"", model.last_ts))
        else:
            ms.store_msg(m.subject, m.hdr, m.data, m.ts, m.ttl)
    ms.update_config(model.config)
    return ms


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
        self.model = Model(self.config)
        self.synced = copy.deepcopy(self.model)
        self.stored_since_sync: dict[int, StoredMessage] = {}
        self.clock = 1_000_000

    def teardown(self) -> None:
        try:
            self.fs.close()
        finally:
            durable.set_journal(None)
            shutil.rmtree(self.tmp, ignore_errors=True)

    def _stores(self):
        return (self.fs, self.ms)

    # Writing

    @rule(subject=st.sampled_from(SUBJECTS), size=st.integers(0, 60),
          ttl=st.sampled_from([0, 0, 0, 30, 200]), with_hdr=st.booleans(),
          tick=st.integers(0, 20))
    def store(self, subject, size, ttl, with_hdr, tick):
        self.clock += tick
        hdr = b"NATS/1.0\r\nk: v\r\n\r\n" if with_hdr else b""
        data = bytes((self.clock + i) % 251 for i in range(size))
        seq = self.model.store(subject, hdr, data, self.clock, ttl)
        assert self.fs.store_msg(subject, hdr, data, self.clock, ttl) == seq
        assert self.ms.store_msg(subject, hdr, data, self.clock, ttl) == seq
        self.stored_since_sync[seq] = self.model.msgs.get(seq) or StoredMessage(
            seq, subject, hdr, data, self.clock, ttl)

    @rule(count=st.integers(1, 40), subject=st.sampled_from(SUBJECTS))
    def store_many(self, count, subject):
        for _ in range(count):
            self.store(subject, 20, 0, False, 1)

    @rule(back=st.integers(0, 30), erase=st.booleans())
    def remove(self, back, erase):
        seq = self.model.last_seq - back
        expected = self.model.remove(seq)
        assert self.fs.remove(seq, erase=erase) == expected
        assert self.ms.remove(seq, erase=erase) == expected

    @rule(subject=st.sampled_from([None, *FILTERS]), back=st.integers(0, 40),
          use_seq=st.booleans(), keep=st.sampled_from([0, 0, 1, 3, 10]))
    def purge(self, subject, back, use_seq, keep):
        seq = max(1, self.model.last_seq - back) if use_seq else 0
        expected = self.model.purge(subject, seq, keep)
        assert self.fs.purge(subject, seq, keep) == expected
        assert self.ms.purge(subject, seq, keep) == expected

    @rule(ahead=st.integers(1, 30))
    def skip(self, ahead):
        first = self.model.last_seq + ahead
        self.model.skip(first)
        for store in self._stores():
            store.skip_msgs(first)

    @rule(max_msgs=st.sampled_from([-1, -1, 5, 20]), max_bytes=st.sampled_from([-1, -1, 300, 2000]),
          per_subject=st.sampled_from([-1, -1, 1, 3]), max_age=st.sampled_from([0, 0, 100, 500]))
    def limits(self, max_msgs, max_bytes, per_subject, max_age):
        self.config = StoreConfig("model", max_msgs=max_msgs, max_bytes=max_bytes,
                                  max_age=max_age, max_msgs_per_subject=per_subject)
        self.model.config = self.config
        self.model.enforce()
        for store in self._stores():
            store.update_config(self.config)

    @rule(tick=st.integers(0, 300))
    def expire(self, tick):
        self.clock += tick
        expected = self.model.expire(self.clock)
        assert self.fs.expire(self.clock) == expected
        assert self.ms.expire(self.clock) == expected

    # Reading

    @rule(back=st.integers(-2, 50))
    def load(self, back):
        seq = self.model.last_seq - back
        expected = self.model.msgs.get(seq)
        assert self.fs.load(seq) == expected
        assert self.ms.load(seq) == expected

    @rule(back=st.integers(-2, 60), filt=st.sampled_from(FILTERS))
    def load_next(self, back, filt):
        start = self.model.last_seq - back
        expected = self.model.load_next(start, (filt,))
        for store in self._stores():
            assert store.load_next(start, (filt,)) == expected

    @rule(filters=st.lists(st.sampled_from(FILTERS), min_size=1, max_size=2))
    def load_last(self, filters):
        expected = self.model.load_last(tuple(filters))
        for store in self._stores():
            assert store.load_last(tuple(filters)) == expected

    @rule(subject=st.sampled_from(SUBJECTS))
    def last_seq_for(self, subject):
        expected = self.model.last_seq_for(subject)
        for store in self._stores():
            assert store.last_seq_for(subject) == expected

    @rule(back=st.integers(-2, 60), filt=st.sampled_from(FILTERS), lps=st.booleans())
    def num_pending(self, back, filt, lps):
        start = self.model.last_seq - back
        expected = self.model.num_pending(start, (filt,), lps)
        for store in self._stores():
            assert store.num_pending(start, (filt,), last_per_subject=lps) == expected

    @rule(filt=st.sampled_from(FILTERS))
    def subjects(self, filt):
        expected = self.model.subjects(filt)
        for store in self._stores():
            assert store.subjects(filt) == expected

    @invariant()
    def same_state(self):
        expected = self.model.summary()
        assert summary(self.fs) == expected
        assert summary(self.ms) == expected
        assert self.fs.state().damaged == []

    @invariant()
    def same_deleted(self):
        expected = self.model.deleted()
        assert self.fs.deleted() == expected
        assert self.ms.deleted() == expected

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

    @rule(subject=st.sampled_from(SUBJECTS))
    def sync_while_storing(self, subject):
        """Changes made while a job runs are not covered by it (but by the next one)."""
        job = self.fs.begin_sync()
        snapshot = copy.deepcopy(self.model)
        self.store(subject, 10, 0, False, 1)
        since = dict(self.stored_since_sync)
        if job is not None:
            job.run()
            self.fs.finish_sync(job)
        self.synced = snapshot
        self.stored_since_sync = since

    @rule(tail=st.sampled_from(["cut", "cut", "tear", "pages"]), seed=st.integers(0, 1 << 16),
          phase=st.sampled_from(["idle", "begun", "ran"]))
    def crash(self, tail, seed, phase):
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
        self.fs = FileStore(self.dir, self.config, OPTIONS)
        expected = copy.deepcopy(self.synced)
        expected.config = self.config
        expected.enforce()
        if tail == "cut":
            assert self.fs.state().damaged == []
            assert summary(self.fs) == expected.summary()
            assert Model.of_store(self.fs, self.config).msgs == expected.msgs
            assert self.fs.deleted() == expected.deleted()
        else:
            self._check_legal(expected)
        self.model = Model.of_store(self.fs, self.config)
        self.ms = memory_store_like(self.model)
        self._sync()  # limits enforced at open are only in memory until the next sync

    def _check_legal(self, expected: Model) -> None:
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
        self._sync()


StoreMachine.TestCase.settings = settings(
    max_examples=int(os.environ.get("STORE_MODEL_EXAMPLES", "150")), stateful_step_count=50,
    deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink])
TestStoreModel = StoreMachine.TestCase
