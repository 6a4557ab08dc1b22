"""Group commit on a real file store: a lone small sync runs on the loop's thread (a hand-off to a
worker would cost as much as the fdatasync), anything bigger or concurrent goes to a worker."""

from __future__ import annotations

import asyncio

from broker.jetstream.groupcommit import GroupCommit
from storage import FileStore
from storage.store import StoreConfig


def store_with(tmp_path, name: str, size: int) -> FileStore:
    fs = FileStore(str(tmp_path / name), StoreConfig(name=name))
    fs.store_msg("a", b"", b"x" * size, 1)
    return fs


async def until(check, what: str) -> None:
    for _ in range(2000):
        if check():
            return
        await asyncio.sleep(0.001)
    raise AssertionError(f"never: {what}")


async def test_a_lone_small_sync_is_done_within_the_loop_turn_that_starts_it(tmp_path):
    commit = GroupCommit(asyncio.get_running_loop())
    fs = store_with(tmp_path, "small", 100)
    replies: list = []
    commit.after_sync(fs, replies.append)
    await asyncio.sleep(0)  # the turn that starts the jobs
    assert replies == [None] and commit.syncs == 1
    fs.close()


async def test_a_large_sync_and_concurrent_syncs_go_to_workers(tmp_path):
    commit = GroupCommit(asyncio.get_running_loop())
    large = store_with(tmp_path, "large", 100_000)
    a, b = store_with(tmp_path, "a", 100), store_with(tmp_path, "b", 100)
    replies: list = []
    for store in (large, a, b):
        commit.after_sync(store, replies.append)
    await asyncio.sleep(0)
    assert replies == [] and commit.syncs == 0, "ran on the loop's thread"
    await until(lambda: len(replies) == 3, "three syncs done")
    assert replies == [None, None, None]
    for store in (large, a, b):
        store.close()
