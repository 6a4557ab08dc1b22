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
