"""Fixtures shared by the store tests: `open_store` gives a store of each kind (file, memory);
a test module sets the FileStore's options with a `store_options` fixture."""

from __future__ import annotations

import pytest

from storage import FileStore, FileStoreOptions, MemoryStore, StoreConfig
from storage.store import MessageStore


@pytest.fixture
def store_options() -> FileStoreOptions:
    return FileStoreOptions()


@pytest.fixture(params=["file", "memory"])
def kind(request) -> str:
    return request.param


@pytest.fixture
def open_store(kind, tmp_path, store_options):
    """open_store(config=None) -> a store of the parametrized kind (a FileStore reopens the same
    directory); all are closed at the end."""
    opened: list[MessageStore] = []

    def make(config: StoreConfig | None = None) -> MessageStore:
        config = config or StoreConfig("t")
        if kind == "file":
            store: MessageStore = FileStore(str(tmp_path / "store"), config, store_options)
        else:
            store = MemoryStore(config)
        opened.append(store)
        return store

    yield make
    for store in opened:
        store.close()
