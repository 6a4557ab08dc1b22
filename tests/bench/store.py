"""Store benchmarks: `python -m tests.bench.store [--count N] [--dir DIR]`.

Prints store_msg rates with a group commit every 256 messages (inline, and pipelined with the
fsync in a worker thread as the broker does it), the cost of one fdatasync here, open/recovery
time, disk bytes and index memory per message, read rates (load, load_next, and load_batch as a
consumer reads: batches of 256, also filtered and with a byte budget; and with a filter that
matches one message in eight), and the skip_msg rate (interest streams nobody listens to) with the
disk it costs. `--reads-only` measures just the reads.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import shutil
import tempfile
import threading
import time

from storage import FileStore, FileStoreOptions, MemoryStore, StoreConfig
from storage.store import ALL, MessageStore

PAYLOAD = b"x" * 128
SUBJECT = "bench.data"
BATCH = 256


def _sync(store: MessageStore) -> None:
    job = store.begin_sync()
    if job is not None:
        job.run()
        store.finish_sync(job)


def store_inline(store: MessageStore, count: int) -> dict:
    """Store, and every BATCH messages commit in the same thread (fsync included in the time)."""
    ts = time.time_ns()
    t0 = time.perf_counter()
    sync_time = 0.0
    for i in range(count):
        store.store_msg(SUBJECT, b"", PAYLOAD, ts + i)
        if i % BATCH == BATCH - 1:
            s0 = time.perf_counter()
            _sync(store)
            sync_time += time.perf_counter() - s0
    _sync(store)
    elapsed = time.perf_counter() - t0
    return {"msgs_per_s": round(count / elapsed), "store_only_msgs_per_s":
            round(count / (elapsed - sync_time)), "sync_share": round(sync_time / elapsed, 3)}


def store_pipelined(store: MessageStore, count: int) -> dict:
    """The broker's pattern: while one job's fsync runs in a worker, keep storing; start the next
    job when it is done and at least BATCH messages are waiting."""
    ts = time.time_ns()
    done = threading.Event()
    done.set()
    job = None
    jobs = 0
    t0 = time.perf_counter()
    pending = 0

    def run(j):
        j.run()
        done.set()

    for i in range(count):
        store.store_msg(SUBJECT, b"", PAYLOAD, ts + i)
        pending += 1
        if pending >= BATCH and done.is_set():
            if job is not None:
                store.finish_sync(job)
            job = store.begin_sync()
            pending = 0
            jobs += 1
            done.clear()
            threading.Thread(target=run, args=(job,)).start()
    done.wait()
    if job is not None:
        store.finish_sync(job)
    _sync(store)
    elapsed = time.perf_counter() - t0
    return {"msgs_per_s": round(count / elapsed), "jobs": jobs,
            "avg_batch": round(count / max(jobs, 1))}


def fdatasync_cost(directory: str, rounds: int = 300) -> dict:
    path = os.path.join(directory, "fsync-probe")
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    chunk = b"y" * (BATCH * 170)
    try:
        t0 = time.perf_counter()
        for _ in range(rounds):
            os.write(fd, chunk)
            os.fdatasync(fd)
        per = (time.perf_counter() - t0) / rounds
    finally:
        os.close(fd)
        os.unlink(path)
    return {"ms_per_fdatasync_with_43KB": round(per * 1000, 3)}


def disk_bytes(directory: str) -> int:
    return sum(os.path.getsize(os.path.join(directory, n)) for n in os.listdir(directory))


def index_bytes(store: FileStore) -> int:
    total = 0
    for seg in store._segs:
        for arr in (seg.seqs, seg.offs, seg.sizes, seg.tss, seg.sids, seg.lsub_gid):
            total += len(arr) * arr.itemsize
        total += len(seg.flags) + len(seg.hdrs)
    return total


def skip_rate(store: MessageStore, count: int) -> dict:
    """skip_msg with a group commit every BATCH skips, as store_inline does."""
    ts = time.time_ns()
    t0 = time.perf_counter()
    for i in range(count):
        store.skip_msg(ts + i)
        if i % BATCH == BATCH - 1:
            _sync(store)
    _sync(store)
    return {"skips_per_s": round(count / (time.perf_counter() - t0))}


def read_rates(store: MessageStore, count: int, last: int) -> dict:
    rng = random.Random(1)
    seqs = [rng.randint(1, last) for _ in range(min(count, 200_000))]
    t0 = time.perf_counter()
    for seq in seqs:
        store.load(seq)
    random_rate = len(seqs) / (time.perf_counter() - t0)
    n = min(count, 300_000)
    t0 = time.perf_counter()
    seq = 1
    for _ in range(n):
        msg = store.load_next(seq)
        seq = msg.seq + 1
    next_rate = n / (time.perf_counter() - t0)
    tail = list(range(last - 2000, last + 1))
    t0 = time.perf_counter()
    for _ in range(20):
        for seq in tail:
            store.load(seq)
    tail_rate = 20 * len(tail) / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    seq = 1
    for _ in range(n):
        msg = store.load_next(seq, (SUBJECT,))
        seq = msg.seq + 1
    filtered_rate = n / (time.perf_counter() - t0)
    return {"load_random_per_s": round(random_rate), "load_next_per_s": round(next_rate),
            "load_tail_per_s": round(tail_rate), "load_next_filtered_per_s": round(filtered_rate)}


def _walk(store: MessageStore, n: int, filters: tuple[str, ...], batch: int,
          max_bytes: int = 0) -> float:
    """Read up to n messages from the start as a consumer does; messages per second."""
    t0 = time.perf_counter()
    seq = 1
    got = 0
    while got < n:
        if batch:
            msgs = store.load_batch(seq, filters, batch, max_bytes)
            if not msgs:
                break
            got += len(msgs)
            seq = msgs[-1].seq + 1
        else:
            msg = store.load_next(seq, filters)
            if msg is None:
                break
            got += 1
            seq = msg.seq + 1
    return got / (time.perf_counter() - t0)


def batch_rates(store: MessageStore, count: int) -> dict:
    """load_batch in batches of BATCH (what a pull consumer asks for), against load_next."""
    n = min(count, 300_000)
    return {
        "load_batch_per_s": round(_walk(store, n, (ALL,), BATCH)),
        "load_batch_filtered_per_s": round(_walk(store, n, (SUBJECT,), BATCH)),
        "load_batch_wildcard_per_s": round(_walk(store, n, ("bench.*",), BATCH)),
        "load_batch_max_bytes_16k_per_s": round(_walk(store, n, (ALL,), BATCH, 16 << 10)),
    }


def sparse_rates(store: MessageStore, count: int) -> dict:
    """A stream of 8 subjects read through a filter matching one: matched messages per second
    for load_next and load_batch."""
    ts = time.time_ns()
    for i in range(count):
        store.store_msg(f"bench.{i % 8}", b"", PAYLOAD, ts + i)
    _sync(store)
    n = count // 8
    return {"msgs": count, "matching": n,
            "load_next_per_s": round(_walk(store, n, ("bench.3",), 0)),
            "load_batch_per_s": round(_walk(store, n, ("bench.3",), BATCH)),
            "load_batch_two_subjects_per_s": round(_walk(store, 2 * n, ("bench.3", "bench.5"),
                                                         BATCH))}


def reads_only(base: str, count: int) -> dict:
    results: dict[str, dict] = {}
    path = os.path.join(base, "reads")
    fs = FileStore(path, StoreConfig("bench"))
    store_inline(fs, count)
    results["reads"] = read_rates(fs, count, count)
    print("reads", results["reads"], flush=True)
    results["batch_reads"] = batch_rates(fs, count)
    print("batch reads", results["batch_reads"], flush=True)
    fs.close()
    fs = FileStore(path, StoreConfig("bench"))  # nothing in memory: every read from the files
    results["reads_after_reopen"] = {**read_rates(fs, count, count), **batch_rates(fs, count)}
    print("reads after reopen", results["reads_after_reopen"], flush=True)
    fs.close()
    shutil.rmtree(path)
    fs = FileStore(path, StoreConfig("bench"))
    results["sparse_filter"] = sparse_rates(fs, min(count, 400_000))
    print("sparse filter", results["sparse_filter"], flush=True)
    fs.close()
    shutil.rmtree(path)
    ms = MemoryStore(StoreConfig("bench"))
    store_inline(ms, min(count, 300_000))
    results["memory_store_reads"] = {**read_rates(ms, min(count, 300_000), min(count, 300_000)),
                                     **batch_rates(ms, count)}
    print("memory store reads", results["memory_store_reads"], flush=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.store")
    parser.add_argument("--count", type=int, default=1_000_000)
    parser.add_argument("--dir", default=None, help="where to put the store (default: a tmp dir)")
    parser.add_argument("--reads-only", action="store_true", help="only the read rates")
    args = parser.parse_args()
    base = tempfile.mkdtemp(prefix="store-bench-", dir=args.dir)
    results: dict[str, dict] = {}
    try:
        if args.reads_only:
            _summary(reads_only(base, args.count))
            return
        results["fdatasync"] = fdatasync_cost(base)
        print("fdatasync", results["fdatasync"], flush=True)

        path = os.path.join(base, "inline")
        fs = FileStore(path, StoreConfig("bench"))
        results["store_inline_commit"] = store_inline(fs, args.count)
        print("store (commit inline)", results["store_inline_commit"], flush=True)
        results["index"] = {"bytes_per_msg_in_memory": round(index_bytes(fs) / args.count, 1)}
        results["reads"] = read_rates(fs, args.count, args.count)
        print("reads", results["reads"], flush=True)
        results["batch_reads"] = batch_rates(fs, args.count)
        print("batch reads", results["batch_reads"], flush=True)
        fs.close()
        results["disk"] = {"bytes_per_msg": round(disk_bytes(path) / args.count, 1),
                           "payload": len(PAYLOAD), "subject": len(SUBJECT)}
        print("disk", results["disk"], "index", results["index"], flush=True)

        gc.collect()
        for verify in (True, False):
            t0 = time.perf_counter()
            fs = FileStore(path, StoreConfig("bench"), FileStoreOptions(verify_segments=verify))
            elapsed = time.perf_counter() - t0
            assert fs.state().msgs == args.count
            fs.close()
            key = "open_verified" if verify else "open_unverified"
            results[key] = {"seconds": round(elapsed, 3), "msgs": args.count}
            print(key, results[key], flush=True)
        shutil.rmtree(path)

        # Worst case for the scan at open: an active segment just short of full (8 MiB).
        path = os.path.join(base, "active")
        fs = FileStore(path, StoreConfig("bench"))
        per_segment = (8 << 20) // 170 - 200
        store_inline(fs, per_segment)
        fs.close()
        t0 = time.perf_counter()
        fs = FileStore(path, StoreConfig("bench"))
        results["open_full_active_segment"] = {
            "seconds": round(time.perf_counter() - t0, 3), "msgs_scanned": fs.state().msgs}
        print("open_full_active_segment", results["open_full_active_segment"], flush=True)
        fs.close()
        shutil.rmtree(path)

        path = os.path.join(base, "pipelined")
        fs = FileStore(path, StoreConfig("bench"))
        results["store_pipelined_commit"] = store_pipelined(fs, args.count)
        print("store (fsync in a worker)", results["store_pipelined_commit"], flush=True)
        fs.close()
        shutil.rmtree(path)

        path = os.path.join(base, "skip")
        fs = FileStore(path, StoreConfig("bench"))
        results["skip_msg"] = skip_rate(fs, args.count)
        fs.close()
        results["skip_msg"]["disk_bytes_total"] = disk_bytes(path)
        print("skip_msg", results["skip_msg"], flush=True)
        shutil.rmtree(path)

        path = os.path.join(base, "sparse")
        fs = FileStore(path, StoreConfig("bench"))
        results["sparse_filter"] = sparse_rates(fs, min(args.count, 400_000))
        print("sparse filter", results["sparse_filter"], flush=True)
        fs.close()
        shutil.rmtree(path)

        ms = MemoryStore(StoreConfig("bench"))
        results["memory_store"] = store_inline(ms, min(args.count, 500_000))
        print("memory store", results["memory_store"], flush=True)
        results["memory_store_reads"] = batch_rates(ms, args.count)
        print("memory store reads", results["memory_store_reads"], flush=True)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    _summary(results)


def _summary(results: dict) -> None:
    print("\nsummary")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
