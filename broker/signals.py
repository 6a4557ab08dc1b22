"""`broker --signal <command>[=<pid|pidfile>]`: signal a running broker, as nats-server does."""

from __future__ import annotations

import os
import signal
import sys

COMMANDS = {
    "stop": signal.SIGKILL,
    "quit": signal.SIGINT,
    "term": signal.SIGTERM,
    "reopen": signal.SIGUSR1,
    "reload": signal.SIGHUP,
    "ldm": signal.SIGUSR2,
}


def send_signal(spec: str) -> int:
    command, _, target = spec.partition("=")
    sig = COMMANDS.get(command.lower())
    if sig is None:
        print(f"broker: unknown signal {command!r}", file=sys.stderr)
        return 1
    try:
        pid = _resolve_pid(target)
        os.kill(pid, sig)
    except (ValueError, OSError) as exc:
        print(f"broker: {exc}", file=sys.stderr)
        return 1
    return 0


def _resolve_pid(target: str) -> int:
    """A PID, a PID file, or (when empty) the one broker process running here."""
    if target.isdigit():
        return int(target)
    if target:
        with open(target) as f:
            text = f.read().strip()
        if not text.isdigit():
            raise ValueError(f"PID file {target} does not hold a PID")
        return int(text)
    pids = _running_brokers()
    if not pids:
        raise ValueError("no broker process is running")
    if len(pids) > 1:
        raise ValueError("multiple broker processes running:\n"
                         + "\n".join(str(p) for p in pids))
    return pids[0]


def _running_brokers() -> list[int]:
    found = []
    me = os.getpid()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if _is_broker(argv) and not any(a.startswith(b"--signal") or a in (b"-sl", b"--sl")
                                        or a.startswith(b"-sl=") for a in argv):
            found.append(int(entry))
    return found


def _is_broker(argv: list[bytes]) -> bool:
    if argv and os.path.basename(argv[0]) == b"broker":
        return True
    if len(argv) > 1 and os.path.basename(argv[1]) == b"broker":
        return True
    return any(argv[i] == b"-m" and argv[i + 1] == b"broker" for i in range(len(argv) - 1))
