"""`accounts { }` and `system_account`: every accepted form parsed to its dataclasses, every
refusal with its key and line, and nats-server's own error texts.

The expected texts marked "nats-server" were printed by nats-server 2.15.1 and 2.9.10 alike
(`nats-server -t -c FILE`, or at start-up where `-t` does not look: the system account and
`no_auth_user`), unless a comment names one version. Where the installed nats-server is there,
`test_nats_server_prints_the_same_text` checks those of the `-t` kind against it again.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from config import ConfigError, Options, Permissions, User, load
from config.options import AccountJetStream, AccountOptions, Export, Import

NKEY = "UDQ3X6SNOKLWSIEHS7GIGM5AKHZMYSVK7ZJM7HJEYXXC6K4ZNN4Y6POQ"
NKEY2 = "UDXU4RCSJNZOIQHZNWXHXORDPRTGNJAHAHFRGZNEEJCPQTT2M7NLCNF4"
NATS_SERVERS = [
    path
    for path in {shutil.which("nats-server"), "/tmp/oracle/bin/nats-server"}
    if path and Path(path).is_file()
]


def load_text(tmp_path: Path, text: str, name: str = "test.conf") -> Options:
    path = tmp_path / name
    path.write_text(text)
    return load(str(path))


def load_error(tmp_path: Path, text: str) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        load_text(tmp_path, text)
    return caught.value


# Two accounts exporting to and importing from each other, used by several tests below.
LINKED = """
accounts {
  A {
    exports: [
      {stream: "a.>"}
      {service: "svc.>", accounts: [B]}
      {service: "pub.q"}
    ]
  }
  B {
    imports: [
      %s
    ]
  }
  C { }
}
"""


def linked(import_entry: str) -> str:
    return LINKED % import_entry


# --- accepted forms ---------------------------------------------------------------------------


def test_full_accounts_block(tmp_path: Path) -> None:
    options = load_text(tmp_path, f"""
    accounts {{
      A {{
        users = [
          {{user: a, password: pa, permissions {{ publish: "a.>" }}}}
          {{nkey: {NKEY}}}
        ]
        jetstream: {{
          max_memory: 1G, max_file: 2GB, max_streams: 10, max_consumers: 5
          max_bytes_required: true, max_ack_pending: 100
          mem_max_stream_bytes: 1M, disk_max_stream_bytes: 2M
        }}
        exports = [
          {{stream: "a.>"}}
          {{service: "svc.>", accounts: [B], response_type: chunked}}
        ]
      }}
      B {{
        users = [ {{user: b, password: pb}} ]
        imports = [
          {{stream: {{account: A, subject: "a.>"}}, prefix: p}}
          {{stream: {{account: A, subject: "a.x.>"}}, to: "y.>"}}
          {{service: {{account: A, subject: "svc.q"}}, to: "local.q"}}
          {{service: {{account: A, subject: "svc.r"}}}}
        ]
      }}
    }}
    """)
    assert options.accounts == [
        AccountOptions(
            "A",
            users=[
                User("a", "pa", Permissions(publish_allow=["a.>"]), account="A"),
                User("", nkey=NKEY, account="A"),
            ],
            jetstream=AccountJetStream(
                max_memory=10**9,  # a bare 1G is 10^9, 1GB 2^30, as everywhere in the file
                max_file=2 * 2**30,
                max_streams=10,
                max_consumers=5,
                max_bytes_required=True,
                max_ack_pending=100,
                memory_max_stream_bytes=10**6,
                storage_max_stream_bytes=2 * 10**6,
            ),
            exports=[
                Export("a.>"),
                Export("svc.>", service=True, accounts=["B"], response_type="Chunked"),
            ],
        ),
        AccountOptions(
            "B",
            users=[User("b", "pb", account="B")],
            imports=[
                Import("A", "a.>", prefix="p"),
                Import("A", "a.x.>", to="y.>"),
                Import("A", "svc.q", service=True, to="local.q"),
                Import("A", "svc.r", service=True),
            ],
        ),
    ]
    assert options.users == []  # account users are not the global account's
    assert options.system_account == "$SYS"


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("accounts { A: {} }", ["A"]),
        ("accounts { A {} \n B: { } }", ["A", "B"]),
        ("accounts: [A, B]", ["A", "B"]),
        ("accounts [ A ]", ["A"]),
        ("accounts: []", []),
        ("accounts { }", []),
        # Account names are case-sensitive, unlike keys.
        ("accounts { a {}, A {} }", ["a", "A"]),
        # A used variable is a definition, not an account (nats-server).
        ("accounts { X: [{user: x}], A { users: $X } }", ["A"]),
        ('accounts { "$SYS" { } }', ["$SYS"]),
    ],
)
def test_account_forms(tmp_path: Path, text: str, names: list[str]) -> None:
    assert [account.name for account in load_text(tmp_path, text).accounts] == names


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("enabled", AccountJetStream()),
        ("enable", AccountJetStream()),
        ("ENABLED", AccountJetStream()),
        ("true", AccountJetStream()),
        ("disabled", None),
        ("disable", None),
        ("false", None),
        ("{ }", AccountJetStream()),  # a block enables, with no limits
        ("{ mem: 1, memory: 2 }", AccountJetStream(max_memory=2)),
        ("{ max_mem: 3 }", AccountJetStream(max_memory=3)),
        ("{ max_store: 4 }", AccountJetStream(max_file=4)),
        ("{ max_disk: 5, store: 6 }", AccountJetStream(max_file=6)),
        ("{ disk: 7 }", AccountJetStream(max_file=7)),
        ("{ streams: 8, consumers: 9 }", AccountJetStream(max_streams=8, max_consumers=9)),
        ("{ max_stream_bytes: true }", AccountJetStream(max_bytes_required=True)),
        ("{ max_bytes: true }", AccountJetStream(max_bytes_required=True)),
        ("{ memory_max_stream_bytes: 1K }", AccountJetStream(memory_max_stream_bytes=1000)),
        ("{ store_max_stream_bytes: 1KB }", AccountJetStream(storage_max_stream_bytes=1024)),
        # nats-server keeps any negative number (it means unlimited).
        ("{ max_memory: -5 }", AccountJetStream(max_memory=-5)),
    ],
)
def test_account_jetstream(tmp_path: Path, value: str, expected: AccountJetStream | None) -> None:
    options = load_text(tmp_path, f"accounts {{ A {{ jetstream: {value} }} }}")
    assert options.accounts[0].jetstream == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("single", "Singleton"),
        ("Singleton", "Singleton"),
        ("stream", "Stream"),
        ("chunk", "Chunked"),
        ("CHUNKED", "Chunked"),
    ],
)
def test_response_types(tmp_path: Path, value: str, expected: str) -> None:
    for key in ("response_type", "response"):
        text = f"accounts {{ A {{ exports: [{{{key}: {value}, service: q}}] }} }}"
        options = load_text(tmp_path, text)
        assert options.accounts[0].exports == [Export("q", service=True, response_type=expected)]


def test_export_accounts_may_be_empty_and_exports_repeat(tmp_path: Path) -> None:
    # Both accepted by nats-server: an empty list is public, a repeated export merges.
    options = load_text(tmp_path, 'accounts { A { exports: [{stream: "a.>", accounts: []}, '
                                  '{stream: "a.>"}] } }')
    assert options.accounts[0].exports == [Export("a.>"), Export("a.>")]


def test_default_permissions_of_an_account(tmp_path: Path) -> None:
    options = load_text(tmp_path, """
    accounts { A {
      users: [ {user: a}, {user: b, permissions: {subscribe: "b.>"}} ]
      default_permissions: { publish: "a.>" }
    } }""")
    users = options.accounts[0].users
    assert users[0].permissions == Permissions(publish_allow=["a.>"])
    assert users[1].permissions == Permissions(subscribe_allow=["b.>"])


@pytest.mark.parametrize(
    ("prefix", "kept"), [("p", "p"), ('"p."', "p"), ('"p.q"', "p.q")]
)
def test_stream_import_prefix_drops_the_separator(tmp_path: Path, prefix: str, kept: str) -> None:
    entry = f"{{stream: {{account: A, subject: a.x}}, prefix: {prefix}}}"
    options = load_text(tmp_path, linked(entry))
    assert options.accounts[1].imports == [Import("A", "a.x", prefix=kept)]


@pytest.mark.parametrize(
    "entry",
    [
        "{stream: {account: A, subject: a.x}}",  # a subset of the export
        '{stream: {account: A, subject: "a.>"}}',  # exactly the export
        '{stream: {account: A, subject: "a.*"}, to: "q.$1"}',
        "{service: {account: A, subject: svc.q}}",  # exported to B by name
        '{service: {account: A, subject: "svc.*"}}',
        "{service: {account: A, subject: pub.q}, to: local.q}",
        # One local subject per exporter: these two differ.
        "{service: {account: A, subject: pub.q}}, {service: {account: A, subject: svc.q}}",
    ],
)
def test_authorized_imports(tmp_path: Path, entry: str) -> None:
    load_text(tmp_path, linked(entry))


def test_an_account_may_import_its_own_export(tmp_path: Path) -> None:
    options = load_text(tmp_path, 'accounts { A { exports: [{service: "a.>"}], '
                                  'imports: [{service: {account: A, subject: a.b}, to: x.b}] } }')
    assert options.accounts[0].imports == [Import("A", "a.b", service=True, to="x.b")]


def test_users_of_authorization_and_accounts_together(tmp_path: Path) -> None:
    # nats-server takes a users array in both; those of `authorization` are the global account's.
    options = load_text(tmp_path, f"""
    authorization {{ users: [ {{user: g}} ] }}
    accounts {{ A {{ users: [ {{user: a}}, {{nkey: {NKEY}}} ] }} }}
    no_auth_user: a
    """)
    assert options.users == [User("g")]
    assert [(u.user, u.account) for u in options.accounts[0].users] == [("a", "A"), ("", "A")]
    assert options.no_auth_user == "a"


@pytest.mark.parametrize(
    "text",
    [
        # A single user or token is fine next to accounts without users (nats-server).
        "authorization { user: x, password: y }\naccounts { A { } }",
        "authorization { token: t }\naccounts { A { users: [] } }",
        f"accounts {{ A {{ users: [{{nkey: {NKEY}}}] }} }}\nno_auth_user: {NKEY}",
    ],
)
def test_accepted_combinations(tmp_path: Path, text: str) -> None:
    load_text(tmp_path, text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("port: 4222", "$SYS"),  # the default needs no declaration
        ('system_account: ""', "$SYS"),  # nor does "" (nats-server: the default)
        ("accounts { S {} }\nsystem_account: S", "S"),
        ("accounts { S {} }\nsystem: S", "S"),
        ("accounts [ S ]\nsystem_account: S", "S"),
        ('accounts { "$SYS" { users: [{user: s}] } }\nsystem_account: "$SYS"', "$SYS"),
        ('system_account: "$G"', "$G"),  # the global account always exists (nats-server)
    ],
)
def test_system_account(tmp_path: Path, text: str, expected: str) -> None:
    assert load_text(tmp_path, text).system_account == expected


def test_yaml_twin(tmp_path: Path) -> None:
    options = load_text(tmp_path, """
accounts:
  A:
    users: [{user: a}]
    exports: [{service: "q.>"}]
  B:
    jetstream: enabled
    imports: [{service: {account: A, subject: q.x}}]
system_account: A
""", name="test.yaml")
    assert options.accounts[1] == AccountOptions(
        "B", jetstream=AccountJetStream(), imports=[Import("A", "q.x", service=True)]
    )
    assert options.system_account == "A"


# --- refusals with nats-server's own text -----------------------------------------------------


@dataclass(frozen=True)
class Refusal:
    text: str
    key: str  # the dotted key the error names
    line: int
    problem: str
    # Whether `nats-server -t` prints `problem` too (not so for the start-up checks, nor where
    # one version differs): the live comparison runs those.
    at_test: bool = True
    # What nats-server prints instead when Go's random map order meets the keys the other way.
    or_else: str = ""


NATS_TEXT = [
    Refusal('accounts {\n  "$G" { }\n}', "accounts.$G", 2, '"$G" is a Reserved Account'),
    Refusal("accounts: [A,\n B, \"$G\"]", "accounts[2]", 2, '"$G" is a Reserved Account'),
    Refusal("accounts: [A,\n B, A]", "accounts[2]", 2, "Duplicate Account Entry: A"),
    Refusal("accounts {\n  A: 5\n}", "accounts.A", 2, "Expected map entries for accounts"),
    Refusal(
        "accounts {\n  A { jetstream: bogus }\n}",
        "accounts.A.jetstream",
        2,
        "Expected 'enabled' or 'disabled' for string value, got 'bogus'",
    ),
    Refusal(
        'accounts {\n  A { jetstream { max_file: "1G" } }\n}',
        "accounts.A.jetstream.max_file",
        2,
        'Expected a parseable size for "max_file", got 1G',
    ),
    Refusal(
        "accounts {\n  A { jetstream { max_streams: 1.5 } }\n}",
        "accounts.A.jetstream.max_streams",
        2,
        'Expected a parseable size for "max_streams", got 1.5',
    ),
    Refusal(
        "accounts {\n  A { jetstream { max_bytes_required: 1 } }\n}",
        "accounts.A.jetstream.max_bytes_required",
        2,
        'Expected a parseable bool for "max_bytes_required", got 1',
    ),
    Refusal(
        "accounts {\n  A {\n    exports: [ {stream: a, service: b} ]\n  }\n}",
        "accounts.A.exports[0].service",
        3,
        'Detected service "b" but already saw a stream',
        or_else='Detected stream "a" but already saw a service',
    ),
    Refusal(
        "accounts {\n  A {\n    exports: [ {service: b, stream: a} ]\n  }\n}",
        "accounts.A.exports[0].stream",
        3,
        'Detected stream "a" but already saw a service',
        or_else='Detected service "b" but already saw a stream',
    ),
    Refusal(
        "accounts {\n  A {\n    exports: [ {stream: a, response_type: stream} ]\n  }\n}",
        "accounts.A.exports[0].response_type",
        3,
        "Detected response directive on non-service",
    ),
    Refusal(
        "accounts {\n  A {\n    exports: [ {service: a, response_type: bogus} ]\n  }\n}",
        "accounts.A.exports[0].response_type",
        3,
        'Unknown response type: "bogus"',
    ),
    Refusal(
        "accounts {\n  A {\n    exports: [ {service: a, response: single,\n"
        "      response_type: chunk} ]\n  }\n}",
        "accounts.A.exports[0].response_type",
        4,
        "Duplicate response type definition",
    ),
    Refusal(
        "accounts {\n  A {\n    exports: [ {stream: a, accounts: [X]} ]\n  }\n}",
        "accounts.A.exports[0].accounts",
        3,
        '"X" account not defined for stream export',
    ),
    Refusal(
        "accounts {\n  A {\n    exports: [ {service: a, accounts: [A, X]} ]\n  }\n}",
        "accounts.A.exports[0].accounts",
        3,
        '"X" account not defined for service export',
    ),
    Refusal(
        linked("{stream: {account: A}}"),
        "accounts.B.imports[0].stream",
        12,
        "Expect an account name and a subject",
    ),
    Refusal(
        linked("{stream: {account: X, subject: a.x}}"),
        "accounts.B.imports[0].stream",
        12,
        '"X" account not defined for stream import',
    ),
    Refusal(
        linked("{service: {account: X, subject: pub.q}}"),
        "accounts.B.imports[0].service",
        12,
        '"X" account not defined for service import',
    ),
    Refusal(
        linked("{service: {account: A, subject: nope.q}}"),
        "accounts.B.imports[0].service",
        12,
        'Error adding service import "nope.q": service import not authorized',
    ),
    Refusal(  # exported to B only
        linked("{service: {account: A, subject: pub.q}}").replace("C { }", "C { imports: [\n"
        "{service: {account: A, subject: svc.q}} ] }"),
        "accounts.C.imports[0].service",
        16,
        'Error adding service import "svc.q": service import not authorized',
    ),
    Refusal(  # a stream export is no service export
        linked('{service: {account: A, subject: "a.b"}}'),
        "accounts.B.imports[0].service",
        12,
        'Error adding service import "a.b": service import not authorized',
    ),
    Refusal(
        linked("{stream: {account: A, subject: nope.x}}"),
        "accounts.B.imports[0].stream",
        12,
        'Error adding stream import "nope.x": stream import not authorized',
    ),
    Refusal(  # exports of one subject merge: named accounts only, even beside a public one
        "accounts {\n A { exports: [ {stream: a, accounts: [B]}, {stream: a} ] }\n B { }\n"
        " C { imports: [ {stream: {account: A, subject: a}} ] }\n}",
        "accounts.C.imports[0].stream",
        4,
        'Error adding stream import "a": stream import not authorized',
    ),
    Refusal(
        linked("{stream: {account: A, subject: a.x}}\n{stream: {account: A, subject: a.x}, "
               "prefix: p}"),
        "accounts.B.imports[1].stream",
        13,
        'Error adding stream import "a.x": stream import already exists',
    ),
    Refusal(
        linked('{stream: {account: A, subject: a.x}, prefix: "p.*"}'),
        "accounts.B.imports[0].prefix",
        12,
        'Error adding stream import "a.x": stream import prefix can not contain wildcard tokens',
    ),
    Refusal(
        linked("{service: {account: A, subject: pub.q}}\n{service: {account: A, subject: pub.q}}"),
        "accounts.B.imports[1].service",
        13,
        'Duplicate service import subject "pub.q", previously used in import for account "A", '
        'subject "pub.q"',
    ),
    Refusal(
        linked("{service: {account: A, subject: svc.q}, to: local.q}\n"
               "{service: {account: A, subject: pub.q}, to: local.q}"),
        "accounts.B.imports[1].service",
        13,
        'Duplicate service import subject "local.q", previously used in import for account "A", '
        'subject "svc.q"',
    ),
    Refusal(
        linked('{service: {account: A, subject: pub.q}, to: "a b"}'),
        "accounts.B.imports[0].to",
        12,
        'Error adding service import "pub.q": sublist: invalid subject',
    ),
    Refusal(
        linked("{service: {account: A, subject: pub.q}, stream: {account: A, subject: a.x}}"),
        "accounts.B.imports[0].stream",
        12,
        "Detected stream but already saw a service",
        or_else="Detected service but already saw a stream",
    ),
    # nats-server 2.15.1 (2.9.10 takes both and ignores the prefix).
    Refusal(
        linked("{stream: {account: A, subject: a.x}, prefix: p, to: q}"),
        "accounts.B.imports[0].to",
        12,
        "Stream import can not have a 'prefix' and a 'to' property",
        at_test=False,
    ),
    # Users across accounts and beside `authorization`. nats-server reads the top-level keys in
    # Go's random map order, so which of the two it meets second varies; we always blame the
    # account's user. (For the single user, 2.15.1 printed "Can not have a single user/pass and
    # a users array" when it read `accounts` first.)
    Refusal(
        "accounts {\n  A { users: [{user: a}] }\n  B { users: [{user: a}] }\n}",
        "accounts.B.users[0]",
        3,
        'Duplicate user "a" detected',
    ),
    Refusal(
        f"accounts {{\n  A {{ users: [{{nkey: {NKEY}}}] }}\n"
        f"  B {{ users: [{{nkey: {NKEY}}}] }}\n}}",
        "accounts.B.users[0]",
        3,
        f'Duplicate nkey "{NKEY}" detected',
    ),
    Refusal(
        "authorization { users: [{user: a}] }\naccounts {\n  B { users: [{user: a}] }\n}",
        "accounts.B.users[0]",
        3,
        'Duplicate user "a" detected',
    ),
    Refusal(
        "accounts {\n  B { users: [{user: a}] }\n}\nauthorization { users: [{user: a}] }",
        "accounts.B.users[0]",
        2,
        'Duplicate user "a" detected',
        at_test=False,  # nats-server blames the `authorization` line when it comes second
    ),
    Refusal(
        "authorization { user: x, password: y }\naccounts {\n  B { users: [{user: a}] }\n}",
        "accounts.B.users[0]",
        3,
        "Can not have a single user/pass and accounts",
        at_test=False,
    ),
    Refusal(
        "authorization { token: t }\naccounts {\n  B { users: [{user: a}] }\n}",
        "accounts.B.users[0]",
        3,
        "Can not have a token and accounts",
        or_else="Can not have a token and a users array",
    ),
    # The system account and no_auth_user: nats-server checks these at start-up.
    Refusal(
        "accounts { A { } }\nsystem_account: NOPE",
        "system_account",
        2,
        "error resolving system account: account missing",
        at_test=False,
    ),
    Refusal(
        'system_account: "$SYS"',  # named, the default must be declared (nats-server)
        "system_account",
        1,
        "error resolving system account: account missing",
        at_test=False,
    ),
    Refusal(
        "accounts { S { } }\nsystem: NOPE",
        "system",
        2,
        "error resolving system account: account missing",
        at_test=False,
    ),
    Refusal("system_account: 5", "system_account", 1, "system account name must be a string"),
    Refusal(  # nats-server 2.9.10; 2.15.1 says "user or nkey"
        "accounts { B { users: [{user: a}] } }\nno_auth_user: zz",
        "no_auth_user",
        2,
        '"zz" not present as user in authorization block or account configuration',
        at_test=False,
    ),
    Refusal(  # nats-server 2.9.10; 2.15.1 says "users/nkeys"
        "accounts { B { } }\nno_auth_user: zz",
        "no_auth_user",
        2,
        '"zz" present, but users are not defined',
        at_test=False,
    ),
]


@pytest.mark.parametrize("case", NATS_TEXT, ids=lambda case: case.problem[:60])
def test_refusals_with_nats_server_text(tmp_path: Path, case: Refusal) -> None:
    error = load_error(tmp_path, case.text)
    assert (error.problem, error.key, error.line) == (case.problem, case.key, case.line)


@pytest.mark.skipif(not NATS_SERVERS, reason="no nats-server binary to compare with")
@pytest.mark.parametrize(
    "case", [case for case in NATS_TEXT if case.at_test], ids=lambda case: case.problem[:60]
)
def test_nats_server_prints_the_same_text(tmp_path: Path, case: Refusal) -> None:
    path = tmp_path / "nats.conf"
    path.write_text(case.text + "\n")
    for binary in NATS_SERVERS:
        result = subprocess.run(
            [binary, "-t", "-c", str(path)], capture_output=True, text=True, timeout=30
        )
        texts = [case.problem, case.or_else] if case.or_else else [case.problem]
        printed = any(text in result.stderr for text in texts)
        assert result.returncode != 0 and printed, (binary, result.stderr)


# --- refusals in our words (nats-server's names a Go type, or it says nothing) ----------------


@pytest.mark.parametrize(
    ("text", "key", "line", "fragment"),
    [
        # nats-server: "... got int64" / "got map[string]interface {}" / "got string".
        ("accounts {\n A { jetstream: 5 }\n}", "accounts.A.jetstream", 2,
         "Expected map, bool or string to define JetStream, got the integer 5"),
        ("accounts {\n A { exports: {stream: a} }\n}", "accounts.A.exports", 2,
         "Exports should be an array, got a block { }"),
        ("accounts {\n A { exports: [ a ] }\n}", "accounts.A.exports[0]", 2,
         "Export Items should be a map with type entry, got the string 'a'"),
        ("accounts {\n A { exports: [ {stream: 5} ] }\n}", "accounts.A.exports[0].stream", 2,
         "Expected stream name to be string, got the integer 5"),
        ("accounts {\n A { exports: [ {service: a, response: 1} ] }\n}",
         "accounts.A.exports[0].response", 2, "Expected response type to be string"),
        ("accounts {\n A { imports: {stream: {account: A, subject: a}} }\n}",
         "accounts.A.imports", 2, "Imports should be an array, got a block { }"),
        ("accounts {\n A { imports: [ a ] }\n}", "accounts.A.imports[0]", 2,
         "Import Items should be a map with type entry, got the string 'a'"),
        (linked("{stream: a}"), "accounts.B.imports[0].stream", 12,
         "Stream entry should be an account map, got the string 'a'"),
        (linked("{service: 5}"), "accounts.B.imports[0].service", 12,
         "Service entry should be an account map, got the integer 5"),
        # nats-server: "interface conversion: interface {} is string, not []interface {}".
        ("accounts {\n A { exports: [ {stream: a, accounts: A} ] }\n}",
         "accounts.A.exports[0].accounts", 2, "expected an array [ ] of account names"),
        ("accounts: [A,\n 5]", "accounts[1]", 2, "expected a string, got the integer 5"),
        (linked("{stream: {account: A, subject: 5}}"), "accounts.B.imports[0].stream.subject",
         12, "expected a string"),
        ("accounts {\n A { users: {user: a} }\n}", "accounts.A.users", 2, "expected an array"),
        # nats-server takes these without a word.
        ("accounts: 5", "accounts", 1, "expected a block { } of accounts or an array"),
        ("accounts {\n A { exports: [ {accounts: [A]} ] }\n}", "accounts.A.exports[0]", 2,
         "an export needs a `stream` or a `service` subject"),
        (linked("{prefix: p}"), "accounts.B.imports[0]", 12,
         "an import needs a `stream` or a `service`"),
        (linked("{service: {account: A, subject: pub.q}, prefix: p}"),
         "accounts.B.imports[0].prefix", 12, "prefix applies to stream imports only"),
        ('accounts {\n A { exports: [ {stream: "a..b"} ] }\n}', "accounts.A.exports[0].stream",
         2, "subject 'a..b' is not a valid subject"),
        ('accounts {\n A { exports: [ {service: "a b"} ] }\n}', "accounts.A.exports[0].service",
         2, "subject 'a b' is not a valid subject"),
        # nats-server: "stream import not authorized" (an invalid subject is exported by none).
        (linked('{stream: {account: A, subject: "a..x"}}'), "accounts.B.imports[0].stream", 12,
         "subject 'a..x' is not a valid subject"),
        # nats-server: "failed to create mapping transform ... invalid subject".
        (linked('{stream: {account: A, subject: "a.x"}, prefix: "p..q"}'),
         "accounts.B.imports[0].prefix", 12, "subject 'p..q.a.x' is not a valid subject"),
        (linked('{stream: {account: A, subject: "a.x"}, to: "q..r"}'),
         "accounts.B.imports[0].to", 12, "subject 'q..r' is not a valid subject"),
        # The readers shared with `authorization { }`.
        ("accounts {\n A { users: [{user: a}, {user: a}] }\n}", "accounts.A.users[1]", 2,
         'Duplicate user "a" detected'),
        ("accounts {\n A { users: [{password: a}] }\n}", "accounts.A.users[0]", 2,
         "User entry requires a user"),
        ("accounts {\n A { users: [{nkey: UABC}] }\n}", "accounts.A.users[0].nkey", 2,
         "Not a valid public nkey for a user"),
        ("accounts {\n A { default_permissions: { publish: 'a..b' } }\n}",
         "accounts.A.default_permissions.publish", 2, "not a valid subject"),
        # `no_auth_user` names a user of some account.
        (f"accounts {{ A {{ users: [{{nkey: {NKEY}}}] }} }}\nno_auth_user: {NKEY2}",
         "no_auth_user", 2, "not present as user"),
    ],
)
def test_refusals_in_our_words(
    tmp_path: Path, text: str, key: str, line: int, fragment: str
) -> None:
    error = load_error(tmp_path, text)
    assert (error.key, error.line) == (key, line), str(error)
    assert fragment in error.problem, str(error)


# --- keys nats-server knows that we refuse by name, and unknown keys --------------------------


@pytest.mark.parametrize(
    ("text", "key", "line"),
    [
        (f"accounts {{\n A {{ nkey: {NKEY} }}\n}}", "accounts.A.nkey", 2),
        ("accounts {\n A { mappings { a: b } }\n}", "accounts.A.mappings", 2),
        ("accounts {\n A { maps { a: b } }\n}", "accounts.A.maps", 2),
        ("accounts {\n A { limits { max_connections: 1 } }\n}", "accounts.A.limits", 2),
        ('accounts {\n A { msg_trace: "t.x" }\n}', "accounts.A.msg_trace", 2),
        ('accounts {\n A { trace_dest: "t.x" }\n}', "accounts.A.trace_dest", 2),
        ("accounts {\n A { jetstream { cluster_traffic: owner } }\n}",
         "accounts.A.jetstream.cluster_traffic", 2),
        ("accounts {\n A { exports: [{service: a, latency: lat.a}] }\n}",
         "accounts.A.exports[0].latency", 2),
        ('accounts {\n A { exports: [{service: a, threshold: "1s"}] }\n}',
         "accounts.A.exports[0].threshold", 2),
        ('accounts {\n A { exports: [{service: a, response_threshold: "1s"}] }\n}',
         "accounts.A.exports[0].response_threshold", 2),
        ("accounts {\n A { exports: [{service: a, allow_trace: true}] }\n}",
         "accounts.A.exports[0].allow_trace", 2),
        ('accounts {\n A { exports: [{service: "a.*", account_token_position: 2}] }\n}',
         "accounts.A.exports[0].account_token_position", 2),
        (linked("{service: {account: A, subject: pub.q}, share: true}"),
         "accounts.B.imports[0].share", 12),
        (linked("{stream: {account: A, subject: a.x}, allow_trace: true}"),
         "accounts.B.imports[0].allow_trace", 12),
        ("port: 4222\ndefault_js_domain { A: hub }", "default_js_domain", 2),
    ],
)
def test_known_but_unsupported_keys_are_refused_by_name(
    tmp_path: Path, text: str, key: str, line: int
) -> None:
    error = load_error(tmp_path, text)
    assert (error.key, error.line) == (key, line)
    name = key.rsplit(".", 1)[-1]
    assert error.problem.startswith(f"{name} is not supported by this server: "), str(error)


@pytest.mark.parametrize(
    ("text", "key", "line"),
    [
        ("accounts {\n A { foo: 1 }\n}", "accounts.A.foo", 2),
        ("accounts {\n A { jetstream { foo: 1 } }\n}", "accounts.A.jetstream.foo", 2),
        # nats-server has no such alias, whatever its docs have said.
        ("accounts {\n A { jetstream { storage_max_stream_bytes: 1 } }\n}",
         "accounts.A.jetstream.storage_max_stream_bytes", 2),
        ("accounts {\n A { exports: [{stream: a, foo: 1}] }\n}", "accounts.A.exports[0].foo", 2),
        (linked("{stream: {account: A, subject: a.x}, foo: 1}"), "accounts.B.imports[0].foo", 12),
        (linked("{stream: {account: A, subject: a.x, foo: 1}}"),
         "accounts.B.imports[0].stream.foo", 12),
        # A user's account is where the user is declared, not a key of the user.
        ("accounts {\n A { users: [{user: a, account: B}] }\n B {}\n}",
         "accounts.A.users[0].account", 2),
    ],
)
def test_unknown_keys(tmp_path: Path, text: str, key: str, line: int) -> None:
    error = load_error(tmp_path, text)
    assert (error.key, error.line) == (key, line)
    assert error.problem == f'unknown field "{key.rsplit(".", 1)[-1]}"'
