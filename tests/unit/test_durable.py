"""storage.durable: checked files, the append-only file, the journal and power-loss simulation."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from storage import durable
from storage.durable import AppendFile, DamagedFile


@pytest.fixture
def journal(tmp_path):
    path = str(tmp_path / "journal")
    durable.set_journal(path)
    yield path
    durable.set_journal(None)


def test_checked_file_roundtrip_and_damage(tmp_path):
    path = str(tmp_path / "meta")
    durable.write_checked(path, b'{"a": 1}')
    assert durable.read_checked(path) == b'{"a": 1}'
    raw = bytearray(Path(path).read_bytes())
    raw[-1] ^= 1
    Path(path).write_bytes(raw)
    with pytest.raises(DamagedFile, match="checksum mismatch"):
        durable.read_checked(path)
    Path(path).write_bytes(raw[:10])
    with pytest.raises(DamagedFile, match="shorter than the header"):
        durable.read_checked(path)
    with pytest.raises(FileNotFoundError):
        durable.read_checked(str(tmp_path / "missing"))


def test_write_atomic_replaces_and_leaves_no_temporary(tmp_path):
    path = str(tmp_path / "f")
    durable.write_atomic(path, b"one")
    durable.write_atomic(path, b"two")
    assert Path(path).read_bytes() == b"two"
    assert os.listdir(tmp_path) == ["f"]


def test_append_file_reads_window_and_kernel_and_retries(tmp_path):
    f = AppendFile.create(str(tmp_path / "a"))
    try:
        assert f.append(b"hello ") == 0
        assert f.append(b"world") == 6
        assert f.read(3, 6) == b"lo wor"  # all in user space: no write happened yet
        assert os.path.getsize(tmp_path / "a") == 0
        offset, data = f.take()
        assert (offset, data) == (0, b"hello world")
        durable.pwrite_all(f.fd, data, offset)
        f.synced(11)
        f.append(b"!!")
        f.trim(keep=0, hold=1 << 20)  # small windows trim only in large steps
        assert f.read(0, 13) == b"hello world!!"
        f.flush()
        assert f.handed == 13 and f.durable == 11
        f.failed()  # a sync failed: bytes not durable must be written again
        assert f.handed == 11
        assert f.patch(0, b"J") is True  # already in the kernel: must be rewritten there
        assert f.patch(11, b"?") is False  # not yet written: the window is enough
        assert f.read(11, 2) == b"?!"
    finally:
        f.close()


def test_journal_is_read_from_the_environment(tmp_path):
    path = str(tmp_path / "j")
    out = subprocess.run(
        [sys.executable, "-c", "import storage.durable as d; print(d.journal_path())"],
        env={**os.environ, durable.JOURNAL_ENV: path}, capture_output=True, text=True,
        check=True)
    assert out.stdout.strip() == path


def _write(path: str, data: bytes, sync: bool) -> None:
    fd = durable.create(path)
    try:
        durable.pwrite_all(fd, data, 0)
        if sync:
            durable.fdatasync(fd, path, len(data))
    finally:
        os.close(fd)


def test_power_loss_cuts_to_the_durable_length(tmp_path, journal):
    root = tmp_path / "root"
    root.mkdir()
    a, b, c = (str(root / n) for n in "abc")
    _write(a, b"0123456789", sync=True)
    _write(b, b"never synced", sync=False)
    durable.fsync_dir(str(root))
    _write(c, b"created after the last dirsync", sync=True)
    with open(a, "ab") as f:
        f.write(b"unsynced tail")
    with open(root / "stray", "wb") as f:  # never journaled
        f.write(b"?")
    report = durable.simulate_power_loss(journal, str(root))
    assert sorted(os.listdir(root)) == ["a", "b"]
    assert Path(a).read_bytes() == b"0123456789"
    assert Path(b).read_bytes() == b""  # its creation is durable, its data never was
    assert sorted(report.removed) == [c, str(root / "stray")]


@pytest.mark.parametrize("tail", ["tear", "pages"])
def test_harsher_tails_only_touch_unsynced_bytes(tmp_path, journal, tail):
    root = tmp_path / "root"
    root.mkdir()
    path = str(root / "f")
    durable_part = os.urandom(10_000)
    _write(path, durable_part, sync=True)
    durable.fsync_dir(str(root))
    with open(path, "ab") as f:
        f.write(b"\xff" * 20_000)
    for seed in range(20):
        durable.simulate_power_loss(journal, str(root), tail=tail, seed=seed)
        data = Path(path).read_bytes()
        assert data[:10_000] == durable_part
        assert len(data) <= 30_000
        with open(path, "ab") as f:
            f.write(b"\xff" * (30_000 - len(data)))


def test_power_loss_undoes_unsynced_unlink_and_rename(tmp_path, journal):
    root = tmp_path / "root"
    root.mkdir()
    keep, gone, target = (str(root / n) for n in ("keep", "gone", "target"))
    _write(keep, b"keep me", sync=True)
    _write(gone, b"really gone", sync=True)
    durable.write_atomic(target, b"old")
    durable.unlink(gone)
    durable.fsync_dir(str(root))  # the unlink of `gone` is durable
    durable.unlink(keep)  # ... this one is not
    tmp = target + ".new"
    _write(tmp, b"new", sync=True)
    durable.rename(tmp, target)  # not durable either
    report = durable.simulate_power_loss(journal, str(root))
    assert sorted(os.listdir(root)) == ["keep", "target"]
    assert Path(keep).read_bytes() == b"keep me"
    assert Path(target).read_bytes() == b"old"
    assert sorted(report.restored) == [keep, target]


def test_repeated_power_loss_stays_consistent(tmp_path, journal):
    root = tmp_path / "root"
    root.mkdir()
    path = str(root / "f")
    _write(path, b"abc", sync=True)
    durable.fsync_dir(str(root))
    durable.simulate_power_loss(journal, str(root))
    os.unlink(path)  # what the next process does without the journal is not durable ...
    _write(path, b"xyz", sync=False)  # ... and a new inode may reuse the old number
    durable.fsync_dir(str(root))
    durable.simulate_power_loss(journal, str(root))
    assert Path(path).read_bytes() == b""
