"""The one validated options object the broker runs from.

Field names follow nats-server's configuration keys (the tables in `config.keys` and the block
modules give the file spelling and aliases). Sizes are bytes, durations are seconds as floats.
Defaults are nats-server's.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from common.jwt import OperatorClaims

DEFAULT_PORT = 4222
DEFAULT_HTTP_PORT = 8222
DEFAULT_CLUSTER_PORT = 6222
RANDOM_PORT = -1

MIB = 1024 * 1024


@dataclass
class Permissions:
    """Subject permissions of one user (`permissions { publish, subscribe, allow_responses }`)."""

    publish_allow: list[str] = field(default_factory=list)
    publish_deny: list[str] = field(default_factory=list)
    subscribe_allow: list[str] = field(default_factory=list)
    subscribe_deny: list[str] = field(default_factory=list)
    allow_responses: bool = False
    # The map form `allow_responses { max, expires }`: how many replies, for how long (seconds).
    allow_responses_max_msgs: int = 1  # negative: unlimited
    allow_responses_expires: float = 120.0


@dataclass
class User:
    """One entry of `authorization { users: [...] }`."""

    user: str
    password: str = ""
    permissions: Permissions | None = None
    nkey: str = ""  # a user's public nkey (U...): signs the server's nonce instead of a password
    account: str = ""  # the account the user belongs to; "" is the global account ($G)


GLOBAL_ACCOUNT = "$G"  # users outside `accounts { }` (and servers without accounts) live here
SYSTEM_ACCOUNT = "$SYS"  # nats-server's default system account


@dataclass
class AccountJetStream:
    """JetStream for one account (`accounts { A { jetstream { ... } } }`); -1 is unlimited.

    Values are kept as written: nats-server reads any negative number as unlimited.
    """

    max_memory: int = -1
    max_file: int = -1
    max_streams: int = -1
    max_consumers: int = -1
    max_bytes_required: bool = False  # streams must set max_bytes
    max_ack_pending: int = -1  # the default (and cap) for the account's consumers
    memory_max_stream_bytes: int = -1
    storage_max_stream_bytes: int = -1


@dataclass
class Export:
    """What an account offers to others: a stream (messages flow out) or a service (requests
    flow in, replies flow back)."""

    subject: str
    service: bool = False
    accounts: list[str] = field(default_factory=list)  # who may import; empty: everyone
    response_type: str = "Singleton"  # services: Singleton, Stream or Chunked


@dataclass
class Import:
    """What an account takes from another's exports."""

    account: str  # the exporting account
    subject: str  # the exported subject (or a subset of it)
    service: bool = False
    # The subject in the importing account (a service's local name, a stream's map); "": the
    # same as `subject`.
    to: str = ""
    # Streams: prepended to the subject with a "." (the pre-2.x form of `to`); kept without the
    # trailing "." that nats-server also accepts.
    prefix: str = ""


@dataclass
class AccountOptions:
    """One account of `accounts { }`: its users, its JetStream, what it exports and imports."""

    name: str
    users: list[User] = field(default_factory=list)
    jetstream: AccountJetStream | None = None  # None: no JetStream in this account
    exports: list[Export] = field(default_factory=list)
    imports: list[Import] = field(default_factory=list)


DEFAULT_TLS_TIMEOUT = 2.0  # seconds a TLS handshake may take (nats-server's TLS_TIMEOUT)


@dataclass
class TLSOptions:
    """A `tls { }` block: the client port's TLS (`--tls*` on the command line)."""

    cert_file: str = ""
    key_file: str = ""
    ca_file: str = ""  # trusted for client certificates (and instead of the system's)
    verify: bool = False  # require and verify a client certificate
    timeout: float = DEFAULT_TLS_TIMEOUT
    handshake_first: bool = False  # TLS before INFO (clients must ask for it too)
    min_version: str = ""  # "1.2" or "1.3"; "" is 1.2, as nats-server
    cipher_suites: list[str] = field(default_factory=list)  # Go's names; empty: the defaults
    # Require a client certificate, and take the user from it (its email, DNS or URI names, or
    # its subject's distinguished name): `users` then list those names, without passwords.
    verify_and_map: bool = False


@dataclass
class WebSocketOptions:
    """The `websocket { }` block: NATS clients (nats.ws, nats-py's ws://) over WebSocket."""

    host: str = "0.0.0.0"
    port: int = 0  # 0: no WebSocket listener; -1: a random port
    no_tls: bool = False  # plain ws:// (nats-server insists on saying so explicitly)
    tls: TLSOptions | None = None
    same_origin: bool = False  # the Origin header's host must be the Host header's
    allowed_origins: list[str] = field(default_factory=list)  # or one of these origins
    handshake_timeout: float = 2.0  # seconds for the HTTP upgrade (and TLS)
    compression: bool = False  # permessage-deflate, when the client offers it


@dataclass
class ClusterOptions:
    """The `cluster { }` block: the route listener and the peers to solicit."""

    name: str = ""
    host: str = "0.0.0.0"
    port: int = 0  # 0: no cluster listener
    routes: list[str] = field(default_factory=list)
    advertise: str = ""
    no_advertise: bool = False
    connect_retries: int = 0
    user: str = ""
    password: str = ""
    token: str = ""
    auth_timeout: float = 2.0
    pool_size: int = 0
    compression: str = ""
    tls: TLSOptions | None = None  # routes over TLS, mutual: each side presents its certificate


@dataclass
class JetStreamOptions:
    """The `jetstream { }` block (or `jetstream: enabled`)."""

    enabled: bool = False
    store_dir: str = ""  # JetStream keeps its data under <store_dir>/jetstream
    max_memory_store: int = -1  # -1: derived at start (75% of RAM)
    max_file_store: int = -1  # -1: derived at start (free disk)
    domain: str = ""
    # None means "always": fsync before every PubAck (group commit). A number of seconds is the
    # explicit opt-in to lazy syncing, which can lose acknowledged messages on power loss.
    sync_interval: float | None = None
    strict: bool = False
    unique_tag: str = ""
    max_ack_pending: int = -1
    max_ha_assets: int = -1
    max_request_batch: int = -1
    duplicate_window: float = 0.0


@dataclass
class Options:
    """Everything a server needs to start. Built by `config.load()` and the command line."""

    config_file: str = ""

    # Client listener.
    host: str = "0.0.0.0"
    port: int = DEFAULT_PORT
    server_name: str = ""
    client_advertise: str = ""

    # Monitoring (HTTP). 0 disables it; -1 picks a random port.
    http_host: str = ""  # empty: same as `host`
    http_port: int = 0
    https_port: int = 0  # monitoring over TLS, with the certificate of `tls { }`
    http_base_path: str = ""

    # Limits.
    max_payload: int = MIB
    max_control_line: int = 4096
    max_pending: int = 64 * MIB
    max_connections: int = 64 * 1024
    max_subscriptions: int = 0  # 0: unlimited
    max_sub_tokens: int = 0

    # Timing (seconds).
    ping_interval: float = 120.0
    ping_max: int = 2
    write_deadline: float = 10.0
    lame_duck_duration: float = 120.0
    lame_duck_grace_period: float = 10.0

    # Authentication (top-level `authorization { }` plus `no_auth_user`).
    username: str = ""
    password: str = ""
    authorization: str = ""  # token
    auth_timeout: float = 2.0
    users: list[User] = field(default_factory=list)
    no_auth_user: str = ""

    # Accounts: isolated subject spaces. Users of `users` above are in the global account.
    accounts: list[AccountOptions] = field(default_factory=list)
    system_account: str = SYSTEM_ACCOUNT
    no_system_account: bool = False  # no system account (and no $SYS.REQ services)

    # Operator mode (decentralized auth): the trusted operators and the preloaded account JWTs
    # of the memory resolver (public key -> JWT), decoded and signature-checked at load.
    operators: list[OperatorClaims] = field(default_factory=list)
    resolver: str = ""  # "MEMORY" (the only resolver implemented), "" without operators
    resolver_preload: dict[str, str] = field(default_factory=dict)

    # Logging and process files.
    debug: bool = False
    trace: bool = False
    trace_verbose: bool = False
    logtime: bool = True
    logtime_utc: bool = False
    log_file: str = ""
    log_size_limit: int = 0
    pid_file: str = ""
    ports_file_dir: str = ""
    syslog: bool = False
    remote_syslog: str = ""  # e.g. "udp://localhost:514"

    # Misc.
    server_tags: list[str] = field(default_factory=list)
    server_metadata: dict[str, str] = field(default_factory=dict)
    no_header_support: bool = False
    disable_sublist_cache: bool = False

    tls: TLSOptions | None = None  # None: plain connections only
    websocket: WebSocketOptions = field(default_factory=WebSocketOptions)
    cluster: ClusterOptions = field(default_factory=ClusterOptions)
    jetstream: JetStreamOptions = field(default_factory=JetStreamOptions)
