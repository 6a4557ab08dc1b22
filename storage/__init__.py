"""Bytes on disk and in memory: message stores, segments, durability. Knows nothing of NATS or Raft.

    from storage import FileStore, MemoryStore, StoreConfig
"""

from storage.durable import (
    JOURNAL_ENV,
    AppendFile,
    DamagedFile,
    fsync_dir,
    journal_path,
    read_checked,
    set_journal,
    simulate_power_loss,
    write_atomic,
    write_checked,
)
from storage.filestore import FileStore, FileStoreOptions
from storage.memstore import MemoryStore
from storage.store import (
    ALL,
    CorruptRecord,
    MessageStore,
    StoreConfig,
    StoredMessage,
    StoreError,
    StoreFull,
    StoreState,
    SyncJob,
    file_msg_size,
    memory_msg_size,
)

__all__ = [
    "ALL",
    "JOURNAL_ENV",
    "AppendFile",
    "CorruptRecord",
    "DamagedFile",
    "FileStore",
    "FileStoreOptions",
    "MemoryStore",
    "MessageStore",
    "StoreConfig",
    "StoreError",
    "StoreFull",
    "StoreState",
    "StoredMessage",
    "SyncJob",
    "file_msg_size",
    "fsync_dir",
    "journal_path",
    "memory_msg_size",
    "read_checked",
    "set_journal",
    "simulate_power_loss",
    "write_atomic",
    "write_checked",
]
