"""MemoryStore specifics (its behaviour is compared with FileStore in test_store_model.py)."""

from __future__ import annotations

import pytest

from storage import MemoryStore, StoreConfig, StoreError


def test_memory_store_has_nothing_to_sync_and_refuses_after_close():
    ms = MemoryStore(StoreConfig("m", first_seq=10))
    assert ms.store_msg("a", b"", b"1", 1) == 10
    assert ms.begin_sync() is None
    ms.close()
    with pytest.raises(StoreError):
        ms.store_msg("a", b"", b"2", 2)


def test_memory_store_skip_cannot_move_back():
    ms = MemoryStore(StoreConfig("m"))
    ms.store_msg("a", b"", b"1", 1)
    ms.skip_msgs(5)
    assert ms.state().first_seq == 5 and ms.state().msgs == 0
    with pytest.raises(StoreError):
        ms.skip_msgs(3)
    assert ms.store_msg("a", b"", b"x", 2) == 5


def test_memory_store_load_batch():
    ms = MemoryStore(StoreConfig("m"))
    for i in range(10):
        ms.store_msg(f"s.{i % 2}", b"", b"x" * 10, i)
    ms.remove(3)
    assert [m.seq for m in ms.load_batch(0, max_msgs=4)] == [1, 2, 4, 5]
    assert [m.seq for m in ms.load_batch(2, ("s.0",))] == [5, 7, 9]
    assert [m.seq for m in ms.load_batch(1, max_bytes=26)] == [1, 2]  # 13 bytes each
    assert [m.seq for m in ms.load_batch(1, max_bytes=25)] == [1]
    assert [m.seq for m in ms.load_batch(1, max_bytes=5)] == [1]
    assert ms.load_batch(1, max_msgs=0) == [] and ms.load_batch(11) == []
    assert ms.load_batch(1, max_msgs=3) == [ms.load(1), ms.load(2), ms.load(4)]
