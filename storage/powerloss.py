"""Power-loss simulation from the durability journal written by `storage.durable` (test mode).

After a process was killed with SIGKILL, its files hold everything it wrote (the kernel keeps the
page cache). A power cut would keep less. `simulate_power_loss(journal, root_dir)` rewrites the
files under `root_dir` into one state a power cut could have left, by replaying the journal:

* **Data.** Every file keeps exactly its last journaled durable length (the length covered by its
  last completed fdatasync); the bytes after it are cut. A file that was created and whose creation
  became durable (a directory fsync after it) but was never fdatasynced is kept **empty** (length
  0): that is what ext4/xfs leave for a file whose size was never written back.
* **Names.** A create, rename or unlink counts only once a later fsync of its directory was
  journaled. A file whose creation never became durable is **removed** (even if its data was
  synced: without the directory entry it is unreachable). A rename that never became durable is
  undone: the old inode comes back under its old name (renamed-over inodes survive in the journal's
  graveyard). An unlink that never became durable is undone the same way.
* **Unknown files** (never mentioned in the journal, e.g. created by a process without the journal
  or killed between creating the file and journaling it) are removed: nothing made them durable.
* Directories are never removed (`durable.makedirs` fsyncs the parent at once).
* Not modelled: bytes overwritten in place inside the durable length keep their new contents (a
  legal outcome: the write may have reached the disk); namespace changes the kernel would have
  written back on its own before the crash are not kept (also legal: they were not promised).

Harsher variants, all legal because they only touch bytes beyond the durable length:

* `tail="tear"`: keep a random prefix of each file's unsynced tail, which usually tears a record;
* `tail="pages"`: keep the unsynced tail up to a random 4 KiB page boundary and zero a random
  subset of its pages (pages the disk never got read back as zeros), keeping the durable prefix
  intact.
"""

from __future__ import annotations

import json
import os
import random
from dataclasses import dataclass, field

TAILS = ("cut", "tear", "pages")
PAGE = 4096


@dataclass
class PowerLossReport:
    kept: dict[str, int] = field(default_factory=dict)  # path -> length after the cut
    removed: list[str] = field(default_factory=list)  # files that vanish
    restored: list[str] = field(default_factory=list)  # names brought back (undone rename/unlink)
    lost: list[str] = field(default_factory=list)  # durable names whose inode no longer exists
    torn: dict[str, int] = field(default_factory=dict)  # path -> bytes kept beyond durable length


@dataclass
class _Replay:
    """The journal replayed: the current and the durable namespace, and durable lengths."""

    current: dict[str, int] = field(default_factory=dict)  # path -> inode
    durable: dict[str, int] = field(default_factory=dict)  # path -> inode, as of the dirsyncs
    length: dict[int, int] = field(default_factory=dict)  # inode -> durable length
    ghosts: dict[int, str] = field(default_factory=dict)  # inode -> graveyard link

    def apply(self, event: dict) -> None:
        op = event["op"]
        if op == "create":
            self._forget_inode(event["ino"])
            self.current[event["path"]] = event["ino"]
            self.length[event["ino"]] = 0
        elif op == "sync":
            self.length[event["ino"]] = event["len"]
        elif op == "rename":
            self.current.pop(event["src"], None)
            self.current[event["dst"]] = event["ino"]
            if event.get("ghost") and event.get("old") is not None:
                self.ghosts[event["old"]] = event["ghost"]
        elif op == "unlink":
            self.current.pop(event["path"], None)
            if event.get("ghost"):
                self.ghosts[event["ino"]] = event["ghost"]
        elif op == "dirsync":
            self._dirsync(event["path"])
        elif op == "powerloss":
            self._reset(event["root"], event["files"])

    def _forget_inode(self, ino: int) -> None:
        """A new file got inode `ino`: no other name can still refer to it (the number was free,
        so whatever held it is gone, e.g. removed by an earlier simulated power loss)."""
        for names in (self.current, self.durable):
            for path in [p for p, i in names.items() if i == ino]:
                del names[path]
        self.ghosts.pop(ino, None)

    def _reset(self, root: str, files: dict[str, list[int]]) -> None:
        """An earlier simulation rewrote `root`: that is now both the current and durable state."""
        for names in (self.current, self.durable):
            for path in [p for p in names if p.startswith(root + os.sep)]:
                del names[path]
        for path, (ino, length) in files.items():
            self.current[path] = self.durable[path] = ino
            self.length[ino] = length

    def _dirsync(self, directory: str) -> None:
        for path in [p for p in self.durable if os.path.dirname(p) == directory]:
            del self.durable[path]
        for path, ino in self.current.items():
            if os.path.dirname(path) == directory:
                self.durable[path] = ino


def _read_journal(journal: str) -> list[dict]:
    events = []
    with open(journal, "rb") as f:
        for line in f:
            try:
                events.append(json.loads(line))
            except ValueError:  # a line cut by the kill: it recorded nothing that completed
                continue
    return events


def _inventory(root: str, skip: set[str]) -> dict[int, str]:
    """inode -> path of every regular file under root."""
    found: dict[int, str] = {}
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            path = os.path.join(dirpath, name)
            if path in skip:
                continue
            st = os.lstat(path)
            found[st.st_ino] = path
    return found


def _cut(path: str, durable: int, tail: str, rng: random.Random, report: PowerLossReport) -> None:
    size = os.path.getsize(path)
    keep = min(size, durable)
    if size > durable and tail == "tear":
        keep = durable + rng.randint(0, size - durable)
    elif size > durable and tail == "pages":
        keep = _zero_pages(path, durable, size, rng)
    if keep != size:
        os.truncate(path, keep)
    if keep > durable:
        report.torn[path] = keep - durable
    report.kept[path] = keep


def _zero_pages(path: str, durable: int, size: int, rng: random.Random) -> int:
    first_page = durable // PAGE
    last_page = (size - 1) // PAGE
    end_page = rng.randint(first_page, last_page + 1)
    keep = max(durable, min(size, end_page * PAGE))
    with open(path, "r+b") as f:
        for page in range(first_page, (keep + PAGE - 1) // PAGE if keep > durable else 0):
            if rng.random() < 0.5:
                continue
            start = max(page * PAGE, durable)
            end = min((page + 1) * PAGE, keep)
            f.seek(start)
            f.write(bytes(end - start))
    return keep


def simulate_power_loss(journal: str, root_dir: str, *, tail: str = "cut",
                        seed: int | None = None) -> PowerLossReport:
    """Rewrite the files under `root_dir` into a state a power cut could have produced (see the
    module docstring). The process that wrote them must be dead. Returns what was done."""
    if tail not in TAILS:
        raise ValueError(f"tail must be one of {TAILS}")
    rng = random.Random(seed)
    root = os.path.abspath(root_dir)
    journal = os.path.abspath(journal)
    replay = _Replay()
    for event in _read_journal(journal):
        replay.apply(event)

    def under_root(path: str) -> bool:
        return path == root or path.startswith(root + os.sep)

    targets = {p: ino for p, ino in replay.durable.items() if under_root(p)}
    present = _inventory(root, skip={journal})
    report = PowerLossReport()

    # 1. Move every durable inode that is not under its durable name aside, then remove the rest.
    holding: dict[str, str] = {}
    in_place: set[str] = set()
    for n, (path, ino) in enumerate(sorted(targets.items())):
        source = present.get(ino)
        if source is None and ino in replay.ghosts and os.path.exists(replay.ghosts[ino]):
            source = replay.ghosts[ino]
        if source is None:
            report.lost.append(path)
            continue
        if source == path:
            in_place.add(path)
            continue
        hold = os.path.join(os.path.dirname(path), f".powerloss-hold-{n}")
        os.rename(source, hold)
        holding[path] = hold
        report.restored.append(path)
    for path in _inventory(root, skip={journal} | set(holding.values())).values():
        if path not in in_place:
            os.unlink(path)
            report.removed.append(path)
    for path, hold in holding.items():
        os.rename(hold, path)

    # 2. Cut every surviving file to its durable length (or a legal harsher variant).
    for path, ino in sorted(targets.items()):
        if path in report.lost:
            continue
        _cut(path, replay.length.get(ino, 0), tail, rng, report)

    # 3. Tell the journal: after the cut, this is what exists and is durable under root.
    files = {path: [os.stat(path).st_ino, length] for path, length in report.kept.items()}
    with open(journal, "a") as f:
        f.write(json.dumps({"op": "powerloss", "root": root, "files": files}) + "\n")
    return report
