"""The `broker` command: nats-server's flags, so a harness that launches nats-server can use us.

Flags follow Go's flag package: one or two dashes, `-flag value` or `-flag=value`, and booleans
that take no separate value (`-js`, or `-js=false`). Flags given together with `-c` override the
file, as in nats-server.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import config
from broker import logger as serverlog
from broker.logger import logger
from broker.tls import TLSConfigError
from broker.version import PACKAGE_VERSION, RUNTIME, SERVER_VERSION
from config.options import Options, TLSOptions

USAGE = """\
Usage: broker [options]

A NATS-compatible server with JetStream, written in Python. Flags follow nats-server.

Server Options:
    -a, --addr, --net <host>         Bind to host address (default: 0.0.0.0)
    -p, --port <port>                Use port for clients (default: 4222, -1 for random)
    -n, --name, --server_name <name> Server name (default: the server id)
    -P, --pid <file>                 File to store PID
    -m, --http_port <port>           Use port for http monitoring (-1 for random)
    -c, --config <file>              Configuration file (nats.conf syntax, or .yaml)
    -t                               Test configuration and exit
    -sl, --signal <signal>[=<pid>]   Send signal to a broker process (ldm, stop, quit, term,
                                     reopen, reload); <pid> may be a PID or a PID file
        --client_advertise <string>  Client URL to advertise to other servers
        --ports_file_dir <dir>       Create a ports file in <dir> (broker_<pid>.ports)

Logging Options:
    -l, --log <file>                 File to redirect log output
    -T, --logtime                    Timestamp log entries (default: true)
    -D, --debug                      Enable debugging output
    -V, --trace                      Trace the raw protocol
    -VV                              Verbose trace
    -DV                              Debug and trace
    -DVV                             Debug and verbose trace

JetStream Options:
    -js, --jetstream                 Enable JetStream functionality
    -sd, --store_dir <dir>           Set the storage directory

Authorization Options:
        --user <user>                User required for connections
        --pass <password>            Password required for connections
        --auth <token>               Authorization token required for connections

Cluster Options:
        --routes <rurl-1, rurl-2>    Routes to solicit and connect
        --cluster <cluster-url>      Cluster URL for solicited routes
        --cluster_listen <url>       Same as --cluster
        --cluster_name <string>      Cluster name
        --cluster_advertise <string> Cluster URL to advertise to other servers
        --no_advertise <bool>        Do not advertise known cluster information to clients
        --connect_retries <number>   For implicit routes, number of connect retries

Common Options:
    -h, --help                       Show this message
    -v, --version                    Show version
"""


class UsageError(Exception):
    pass


@dataclass
class Command:
    """What the command line asked for: options to override, and what to do."""

    overrides: dict[str, Any] = field(default_factory=dict)
    config_file: str = ""
    check_only: bool = False
    show_version: bool = False
    show_help: bool = False
    signal: str = ""


def _set(path: str, convert: Callable[[str], Any] = str) -> Callable[[Command, str], None]:
    def apply(cmd: Command, value: str) -> None:
        cmd.overrides[path] = convert(value)
    return apply


def _flag(path: str, value: Any = True) -> Callable[[Command, str], None]:
    def apply(cmd: Command, text: str) -> None:
        cmd.overrides[path] = _parse_bool(text) if text else value
    return apply


def _parse_bool(text: str) -> bool:
    lowered = text.lower()
    if lowered in ("1", "t", "true"):
        return True
    if lowered in ("0", "f", "false"):
        return False
    raise UsageError(f"invalid boolean value {text!r}")


def _port(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise UsageError(f"invalid port {text!r}") from None


def _levels(debug: bool, trace: bool, verbose: bool = False) -> Callable[[Command, str], None]:
    def apply(cmd: Command, text: str) -> None:
        on = _parse_bool(text) if text else True
        if debug:
            cmd.overrides["debug"] = on
        if trace:
            cmd.overrides["trace"] = on
        if verbose:
            cmd.overrides["trace_verbose"] = on
    return apply


def _cluster_url(cmd: Command, value: str) -> None:
    host, port = _split_url(value)
    cmd.overrides["cluster.host"] = host
    cmd.overrides["cluster.port"] = port


def _routes(cmd: Command, value: str) -> None:
    cmd.overrides["cluster.routes"] = [r.strip() for r in value.split(",") if r.strip()]


def _split_url(url: str) -> tuple[str, int]:
    rest = url.split("://", 1)[-1]
    rest = rest.rsplit("@", 1)[-1]
    host, _, port = rest.rpartition(":")
    try:
        return host or "0.0.0.0", int(port)
    except ValueError:
        raise UsageError(f"invalid cluster url {url!r}") from None


def _unsupported(name: str) -> Callable[[Command, str], None]:
    def apply(cmd: Command, value: str) -> None:
        raise UsageError(f"{name} is not supported by this server")
    return apply


def _action(attr: str) -> Callable[[Command, str], None]:
    def apply(cmd: Command, value: str) -> None:
        setattr(cmd, attr, value if attr in ("config_file", "signal") else True)
    return apply


def _ignored(cmd: Command, value: str) -> None:
    pass


# name -> (takes a value, apply)
FLAGS: dict[str, tuple[bool, Callable[[Command, str], None]]] = {}


def _define(names: str, takes_value: bool, apply: Callable[[Command, str], None]) -> None:
    for name in names.split():
        FLAGS[name] = (takes_value, apply)


_define("a addr net", True, _set("host"))
_define("p port", True, _set("port", _port))
_define("n name server_name", True, _set("server_name"))
_define("m http_port", True, _set("http_port", _port))
_define("c config", True, _action("config_file"))
_define("t", False, _action("check_only"))
_define("sl signal", True, _action("signal"))
_define("client_advertise", True, _set("client_advertise"))
_define("ports_file_dir", True, _set("ports_file_dir"))
_define("P pid", True, _set("pid_file"))
_define("l log", True, _set("log_file"))
_define("T logtime", False, _flag("logtime"))
_define("logtime_utc", False, _flag("logtime_utc"))
_define("log_size_limit", True, _set("log_size_limit", int))
_define("max_traced_msg_len", True, _ignored)
_define("s syslog", False, _unsupported("syslog"))
_define("r remote_syslog", True, _unsupported("remote_syslog"))
_define("D debug", False, _levels(True, False))
_define("V trace", False, _levels(False, True))
_define("VV", False, _levels(False, True, True))
_define("DV", False, _levels(True, True))
_define("DVV", False, _levels(True, True, True))
_define("js jetstream", False, _flag("jetstream.enabled"))
_define("sd store_dir", True, _set("jetstream.store_dir"))
_define("user", True, _set("username"))
_define("pass", True, _set("password"))
_define("auth", True, _set("authorization"))
_define("routes", True, _routes)
_define("cluster cluster_listen", True, _cluster_url)
_define("cluster_name", True, _set("cluster.name"))
_define("cluster_advertise", True, _set("cluster.advertise"))
_define("no_advertise", False, _flag("cluster.no_advertise"))
_define("connect_retries", True, _set("cluster.connect_retries", int))
_define("profile", True, _ignored)
_define("ms https_port", True, _set("https_port", _port))
_define("tlscert", True, _set("tls.cert_file"))
_define("tlskey", True, _set("tls.key_file"))
_define("tlscacert", True, _set("tls.ca_file"))
_define("h help", False, _action("show_help"))
_define("help_tls", False, _action("show_help"))
_define("v version", False, _action("show_version"))
FLAGS["tls"] = (False, _flag("tls.enabled"))
FLAGS["tlsverify"] = (False, _flag("tls.verify"))


def parse_args(argv: list[str]) -> Command:
    cmd = Command()
    i = 0
    while i < len(argv):
        arg = argv[i]
        i += 1
        if not arg.startswith("-") or arg in ("-", "--"):
            raise UsageError(f"unexpected argument {arg!r}")
        name, has_eq, value = arg.lstrip("-").partition("=")
        spec = FLAGS.get(name)
        if spec is None:
            raise UsageError(f"flag provided but not defined: -{name}")
        takes_value, apply = spec
        if takes_value and not has_eq:
            if i >= len(argv):
                raise UsageError(f"flag needs an argument: -{name}")
            value = argv[i]
            i += 1
        apply(cmd, value)
    return cmd


def build_options(cmd: Command) -> Options:
    """Options from the config file (if any) with the command line's overrides on top."""
    options = config.load(cmd.config_file) if cmd.config_file else Options()
    options.config_file = cmd.config_file
    overrides = dict(cmd.overrides)
    if any(path.startswith("tls.") for path in overrides):
        _tls_from_flags(options, overrides)
    for path, value in overrides.items():
        target: Any = options
        *parents, leaf = path.split(".")
        for parent in parents:
            target = getattr(target, parent)
        setattr(target, leaf, value)
    return options


def _tls_from_flags(options: Options, overrides: dict[str, Any]) -> None:
    """`--tls`, `--tlsverify`, `--tlscert`, `--tlskey`, `--tlscacert`: TLS on the client port,
    on top of a config file's `tls { }` if it has one (nats-server's overrideTLS)."""
    overrides.pop("tls.enabled", None)  # any TLS flag turns it on
    tls = options.tls or TLSOptions()
    for path in [p for p in overrides if p.startswith("tls.")]:
        setattr(tls, path.removeprefix("tls."), overrides.pop(path))
    if not tls.cert_file:
        raise UsageError("TLS Server certificate must be present and valid")
    if not tls.key_file:
        raise UsageError("TLS Server private key must be present and valid")
    options.tls = tls


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        cmd = parse_args(argv)
    except UsageError as exc:
        print(f"broker: {exc}\n", file=sys.stderr)
        print(USAGE, file=sys.stderr)
        return 2
    if cmd.show_help:
        print(USAGE)
        return 0
    if cmd.show_version:
        # nats-server's own first words, so a harness that parses `nats-server --version` still
        # can; then which release of ours speaks it.
        print(f"nats-server: v{SERVER_VERSION} (pynats-broker {PACKAGE_VERSION}, {RUNTIME})")
        return 0
    if cmd.signal:
        from broker.signals import send_signal

        return send_signal(cmd.signal)
    try:
        options = build_options(cmd)
    except config.ConfigError as exc:
        print(f"broker: {exc}", file=sys.stderr)
        return 1
    except (UsageError, OSError) as exc:
        print(f"broker: {exc}", file=sys.stderr)
        return 1
    if cmd.check_only:
        print(f"broker: configuration file {cmd.config_file or '(none)'} is valid")
        return 0
    serverlog.configure(options.debug, options.trace, options.log_file, options.logtime,
                  options.logtime_utc)
    return run(options, cmd)


def run(options: Options, cmd: Command) -> int:
    from broker.server import StartupError

    try:
        run_loop(_serve(options, cmd))
        # The loop is gone and with it our handlers: a SIGTERM now (the kubelet's, right after
        # a lame duck that finished at once) would end the process with signal 15 rather than
        # the clean exit it already made.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    except StartupError as exc:
        logger.critical("%s", exc)
        print(f"broker: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        logger.critical("Error listening on port: %s", exc)
        return 1
    return 0


async def _serve(options: Options, cmd: Command) -> None:
    from broker.server import Server

    server = Server(options)
    await server.start()
    loop = asyncio.get_running_loop()
    tasks: set[asyncio.Task] = set()

    def spawn(coro: Any) -> None:
        task = loop.create_task(coro)
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    def reload() -> None:
        try:
            fresh = build_options(cmd)
        except (config.ConfigError, UsageError, OSError) as exc:
            logger.error("Failed to reload server configuration: %s", exc)
            return
        try:
            refused = server.reload(fresh)
        except TLSConfigError as exc:
            logger.error("Failed to reload server configuration: %s", exc)
            return
        if refused:
            logger.error("Failed to reload server configuration: config reload not supported "
                         "for %s", ", ".join(refused))

    def reopen_log() -> None:
        serverlog.configure(server.options.debug, server.options.trace, server.options.log_file,
                      server.options.logtime, server.options.logtime_utc)
        logger.info("File log re-opened")

    loop.add_signal_handler(signal.SIGTERM, server.terminate)
    loop.add_signal_handler(signal.SIGINT, lambda: spawn(server.shutdown()))
    loop.add_signal_handler(signal.SIGUSR2, server.enter_lame_duck)
    loop.add_signal_handler(signal.SIGHUP, reload)
    loop.add_signal_handler(signal.SIGUSR1, reopen_log)
    await server.wait_stopped()


def run_loop(coro: Any) -> Any:
    """Run `coro` on uvloop when installed (BROKER_NO_UVLOOP=1 forces the stdlib loop)."""
    if not os.environ.get("BROKER_NO_UVLOOP"):
        try:
            import uvloop
        except ImportError:
            pass
        else:
            return uvloop.run(coro)
    return asyncio.run(coro)
