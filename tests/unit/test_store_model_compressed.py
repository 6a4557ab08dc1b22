"""The model test of test_store_model with compression: the FileStore compresses the segments it
seals (`StoreConfig.compression` "s2", frames of ~200 bytes, so segments hold several; payloads
that compress, as JSON does), and a rule
switches compression off and on as it runs, so stores hold plain and framed segments side by side.
Everything the base machine checks (answers, syncs, crashes with power loss, reopen, truncation,
compaction, limits) must hold the same; its rot rule rots a whole frame of a framed segment.
"""

from __future__ import annotations

import copy
import os
from dataclasses import replace

from hypothesis import HealthCheck, Phase, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import rule

from storage import StoreConfig, StoredMessage, framing, record
from storage.framing import FRAME_HEAD_SIZE, Codecs
from tests.unit import test_store_model as base


def logical(path: str) -> bytes:
    with open(path, "rb") as f:
        buf = f.read()
    if framing.looks_framed(buf):
        buf = framing.unframe(buf, Codecs()).logical
    return buf


def erased_on_disk(directory: str) -> set[int]:
    """`test_store_model.erased_on_disk`, reading framed segments' logical bytes."""
    return {r.seq for name in os.listdir(directory) if name.endswith(".seg")
            for r in record.scan(logical(os.path.join(directory, name)),
                                 record.SEGMENT_HEADER_SIZE)
            if isinstance(r, record.Record) and r.kind == record.KIND_ERASED}


def merged(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Inclusive ranges as a RangeSet reports them: sorted, touching ones joined."""
    out: list[tuple[int, int]] = []
    for lo, hi in sorted(ranges):
        if out and lo <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(hi, out[-1][1]))
        else:
            out.append((lo, hi))
    return out


class CompressedStoreMachine(base.StoreMachine):
    compression = "s2"

    def __init__(self) -> None:
        self._saved = (base.OPTIONS, base.erased_on_disk)
        base.OPTIONS = replace(base.OPTIONS, frame_bytes=200)
        base.erased_on_disk = erased_on_disk
        super().__init__()
        for i in range(20):  # every run starts with a few framed segments
            self.store(base.SUBJECTS[i % 3], 30 + i, 0, i % 4 == 0, 1)
        self._sync()

    def teardown(self) -> None:
        try:
            super().teardown()
        finally:
            base.OPTIONS, base.erased_on_disk = self._saved

    # Every config the base machine makes carries the current compression.
    @property  # type: ignore[override]
    def config(self) -> StoreConfig:
        return self._config

    @config.setter
    def config(self, value: StoreConfig) -> None:
        self._config = replace(value, compression=self.compression)

    @rule(subject=st.sampled_from(base.SUBJECTS), size=st.integers(0, 80),
          ttl=st.sampled_from([0, 0, 0, 30, 200]), with_hdr=st.booleans(),
          tick=st.integers(0, 20))
    def store(self, subject, size, ttl, with_hdr, tick):
        """The base rule with payloads that compress (repetitive, as JSON is), and differ."""
        self.clock += tick
        hdr = b"NATS/1.0\r\nk: v\r\n\r\n" if with_hdr else b""
        data = (b"%d:{\"k\":\"v\",\"n\":%d}," % (self.clock, self.clock % 7) * 8)[:size]
        msg = None
        for store, model in self._pairs():
            seq = model.store(subject, hdr, data, self.clock, ttl)
            assert store.store_msg(subject, hdr, data, self.clock, ttl) == seq
            msg = StoredMessage(seq, subject, hdr, data, self.clock, ttl)
            assert store.msg_size(subject, hdr, data) == model.size_of(msg)
        self.stored_since_sync[msg.seq] = msg

    def _sync(self) -> None:
        """A sync, then the compressions it made possible (segments sealed before it)."""
        super()._sync()
        while self.fs._sync.compress_pending():
            super()._sync()

    @rule(on=st.booleans())
    def switch_compression(self, on):
        self.compression = "s2" if on else "none"
        self.config = self.config
        self.fs.update_config(self.config)
        self.model.config = self.config

    def _check_files(self) -> None:
        if self.torn:
            return
        framed = 0
        for name in os.listdir(self.dir):
            if name.endswith(".seg"):
                path = os.path.join(self.dir, name)
                buf = logical(path)
                damage = [d for d in record.scan(buf, record.SEGMENT_HEADER_SIZE)
                          if isinstance(d, record.Damage)]
                assert not damage, (name, damage)
                with open(path, "rb") as f:
                    framed += f.read(8) == record.SEGMENT_MAGIC_FRAMED
        if framed:
            event("files: framed segments")

    @rule(data=st.data(), probes=base.PROBES.filter(bool))
    def rot(self, data, probes):
        """A frame of a framed segment (or a record of a plain one) rots on disk while the
        store is open: reads find every live record of it damaged as they get to them."""
        entries = [(seg, i) for seg in self.fs._segs if seg.file is None and not seg.compacting
                   for i in seg.live_entries()]
        if not entries:
            event("rot: no sealed segment")
            return
        seg, i = data.draw(st.sampled_from(entries))
        if seg.frames is None:
            event("rot: plain segment")
            off = seg.offs[i]
            with open(seg.path, "rb") as f:
                f.seek(off)
                raw = f.read(seg.sizes[i] + record.READ_SLACK)
            lo, hi = off, off + record.header_at(raw, 0, len(raw)).length
            rotten = {seg.seqs[i]}
        else:
            event("rot: framed segment")
            frames = seg.frames
            k = frames.find(seg.offs[i])
            a, _ = frames.extent(k)
            with open(seg.path, "rb") as f:
                f.seek(a)
                head = framing.frame_head(f.read(FRAME_HEAD_SIZE), 0)
            lo, hi = a, a + FRAME_HEAD_SIZE + head.comp_len
            end = frames.lo[k + 1] if k + 1 < len(frames.lo) else frames.end
            rotten = {seg.seqs[j] for j in seg.live_entries()
                      if frames.lo[k] <= seg.offs[j] < end}
        pos = data.draw(st.integers(lo, hi - 1), label="byte")
        mask = data.draw(st.integers(1, 255), label="mask")
        base.flip(seg.path, pos, mask)
        self._forget_kept_bytes()
        try:
            view = base.DamagedView(copy.deepcopy(self.model), [], set(rotten))
            base.probe(self.fs, view, probes)
            assert self.fs.state().damaged == merged(view.damaged)
        finally:
            base.flip(seg.path, pos, mask)  # repaired on disk, and the loss accepted below
            self._forget_kept_bytes()
        for seq in sorted(rotten):
            for store, model in self._pairs():
                assert store.remove(seq)
                model.remove(seq)
        assert self.fs.state().damaged == []

    def _forget_kept_bytes(self) -> None:
        """Bytes read before the rot (the kept block, decompressed frames) may be kept."""
        self.fs._block = None
        self.fs._io.frames.clear()


CompressedStoreMachine.TestCase.settings = settings(
    max_examples=int(os.environ.get("STORE_MODEL_EXAMPLES", "150")), stateful_step_count=50,
    deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink])
TestCompressedStoreModel = CompressedStoreMachine.TestCase
