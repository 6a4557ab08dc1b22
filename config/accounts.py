"""The `accounts` key: isolated subject spaces, their users and JetStream limits, and what they
export to and import from each other; and `system_account`.

    accounts {
      A {
        users: [ {user: a, password: a}, {nkey: U...} ]
        jetstream: { max_memory: 1G, max_streams: 10 }
        exports: [ {stream: "a.>"}, {service: "svc.>", accounts: [B], response_type: stream} ]
      }
      B {
        imports: [ {stream: {account: A, subject: "a.>"}, prefix: from_a}
                   {service: {account: A, subject: "svc.q"}, to: "local.q"} ]
      }
    }

or `accounts: [A, B]` (accounts without settings). Spellings, aliases and error texts follow
nats-server's parseAccounts and the functions it calls (server/opts.go). As there, the links
between accounts (an import names an account that exists and exports the subject to it; no user
in two accounts) are checked once the whole block is read. The rules that involve other
top-level keys (`authorization`'s users, `system_account`, `no_auth_user`) are in
`config.checks`, which finds the entries to blame with `find_entry` and `account_user_field`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from common.subjects import is_literal, is_subset
from config import unsupported
from config.auth import PERMISSIONS_BLOCK, USERS, subject_problem
from config.options import (
    GLOBAL_ACCOUNT,
    AccountJetStream,
    AccountOptions,
    Export,
    Import,
    Options,
    Permissions,
    User,
)
from config.table import STRING, Key, Kind, Section, apply_section
from config.values import Field, describe, expected, read_list, read_string

_SWITCH_WORDS = {"enabled": True, "enable": True, "disabled": False, "disable": False}
_RESPONSE_TYPES = {
    "single": "Singleton",
    "singleton": "Singleton",
    "stream": "Stream",
    "chunk": "Chunked",
    "chunked": "Chunked",
}


def apply_accounts(options: Options, field: Field) -> None:
    """`accounts { NAME { ... } ... }`, or `accounts: [NAME, ...]`."""
    if isinstance(field.value, list):
        options.accounts = [AccountOptions(name) for name in _read_names(field)]
        return
    if not isinstance(field.value, dict):
        # nats-server ignores any other value; an operator who wrote one meant something.
        raise expected(field, "a block { } of accounts or an array of account names")
    accounts: dict[str, AccountOptions] = {}
    for name, node in field.value.items():
        # Entries referenced as `$name` are variable definitions, not accounts (nats-server).
        if not node.used_as_variable:
            accounts[name] = _read_account(field.child(name, node))
    _check_unique_users(field, accounts)
    for account in accounts.values():
        _check_exports(field, account, accounts)
        _check_imports(field, account, accounts)
    options.accounts = list(accounts.values())


def _read_system_account(field: Field) -> str:
    if not isinstance(field.value, str):
        raise field.error("system account name must be a string")
    return field.value


# `system_account` / `system`; whether the account exists is checked in `config.checks`.
SYSTEM_ACCOUNT_NAME = Kind("account name", _read_system_account)


# --- where errors point ---------------------------------------------------------------------


def find_entry(block: Field, *names: str) -> Field:
    """The entry of `block` spelled as any of `names` (case-insensitive, the last one if
    several), or `block` itself when there is none: what an error about that entry names."""
    found = block
    if isinstance(block.value, dict):
        for name, node in block.value.items():
            if name.lower() in names:
                found = block.child(name, node)
    return found


def _item(block: Field, name: str, index: int) -> Field:
    """The `index`-th element of the array entry `name` of `block` (`exports[2]`)."""
    entry = find_entry(block, name)
    if entry is block or not isinstance(entry.value, list) or index >= len(entry.value):
        return entry
    return entry.item(index, entry.value[index])


def _account_field(accounts: Field, name: str) -> Field:
    """The block of account `name` (names are case-sensitive, as in nats-server)."""
    if isinstance(accounts.value, dict) and name in accounts.value:
        return accounts.child(name, accounts.value[name])
    return accounts


def account_user_field(accounts: Field, account: str, index: int) -> Field:
    """The `index`-th user entry of `account` in the `accounts` block `accounts`."""
    return _item(_account_field(accounts, account), "users", index)


def duplicate_user_problem(user: User) -> str:
    """nats-server's text for a user or nkey declared twice (users and nkeys share one space)."""
    if user.nkey:
        return f"Duplicate nkey {_quote(user.nkey)} detected"
    return f"Duplicate user {_quote(user.user)} detected"


def _quote(value: Any) -> str:
    """Go's %q for a string (nats-server quotes names that way), a description otherwise."""
    return json.dumps(value) if isinstance(value, str) else describe(value)


def _go_text(value: Any) -> str:
    """Go's %v of a config value, as nats-server prints the value it could not use."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, str | int | float):
        return str(value)
    return describe(value)


# --- accounts -------------------------------------------------------------------------------


@dataclass
class _Account:
    """One account's block as read: `default_permissions` still apart from the users."""

    users: list[User] = field(default_factory=list)
    default_permissions: Permissions | None = None
    jetstream: AccountJetStream | None = None
    exports: list[Export] = field(default_factory=list)
    imports: list[Import] = field(default_factory=list)


def _read_names(field: Field) -> list[str]:
    """The array form: account names only, none reserved, none twice."""
    names: list[str] = []
    for index, node in enumerate(read_list(field)):
        item = field.item(index, node)
        name = read_string(item)
        if name == GLOBAL_ACCOUNT:
            raise item.error(f"{_quote(name)} is a Reserved Account")
        if name in names:
            raise item.error(f"Duplicate Account Entry: {name}")
        names.append(name)
    return names


def _read_account(field: Field) -> AccountOptions:
    if not isinstance(field.value, dict):
        raise field.error("Expected map entries for accounts")
    # The global account holds the users outside `accounts`; it cannot be declared.
    if field.name == GLOBAL_ACCOUNT:
        raise field.error(f"{_quote(field.name)} is a Reserved Account")
    account = _Account()
    apply_section(field, ACCOUNT, account)
    for user in account.users:
        user.account = field.name
        # As in `authorization { }`: for the users without permissions of their own.
        if user.permissions is None:
            user.permissions = account.default_permissions
    return AccountOptions(
        field.name, account.users, account.jetstream, account.exports, account.imports
    )


def _check_unique_users(accounts_field: Field, accounts: Mapping[str, AccountOptions]) -> None:
    """A user name or nkey picks the account at CONNECT, so it may be declared only once."""
    seen: set[str] = set()
    for account in accounts.values():
        for index, user in enumerate(account.users):
            identity = user.nkey or user.user
            if identity in seen:
                where = account_user_field(accounts_field, account.name, index)
                raise where.error(duplicate_user_problem(user))
            seen.add(identity)


# --- JetStream ------------------------------------------------------------------------------


def _apply_jetstream(account: _Account, field: Field) -> None:
    """`jetstream: enabled` (unlimited), `disabled`, a boolean, or a block of limits."""
    value = field.value
    if isinstance(value, bool):
        account.jetstream = AccountJetStream() if value else None
        return
    if isinstance(value, str):
        if value.lower() not in _SWITCH_WORDS:
            raise field.error(f"Expected 'enabled' or 'disabled' for string value, got {value!r}")
        account.jetstream = AccountJetStream() if _SWITCH_WORDS[value.lower()] else None
        return
    if not isinstance(value, dict):
        raise field.error(
            f"Expected map, bool or string to define JetStream, got {describe(value)}"
        )
    limits = AccountJetStream()
    apply_section(field, ACCOUNT_JETSTREAM, limits)
    account.jetstream = limits


def _read_limit(field: Field) -> int:
    """A number (a bare size literal such as 1G counts): nats-server takes no string here,
    not even the "1G" that the server-wide `jetstream { }` block takes."""
    if isinstance(field.value, bool) or not isinstance(field.value, int):
        raise field.error(
            f"Expected a parseable size for {_quote(field.name)}, got {_go_text(field.value)}"
        )
    return field.value


def _read_flag(field: Field) -> bool:
    if not isinstance(field.value, bool):
        raise field.error(
            f"Expected a parseable bool for {_quote(field.name)}, got {_go_text(field.value)}"
        )
    return field.value


# --- exports --------------------------------------------------------------------------------


@dataclass
class _ExportEntry:
    """One `exports` entry as read; the order of its keys does not matter."""

    kind: str = ""  # "stream" or "service", once seen
    subject: str = ""
    accounts: list[str] = field(default_factory=list)
    response_type: str = ""  # "" until given


def _read_exports(field: Field) -> list[Export]:
    if not isinstance(field.value, list):
        raise field.error(f"Exports should be an array, got {describe(field.value)}")
    return [_read_export(field.item(index, node)) for index, node in enumerate(field.value)]


def _read_export(field: Field) -> Export:
    if not isinstance(field.value, dict):
        raise field.error(
            f"Export Items should be a map with type entry, got {describe(field.value)}"
        )
    entry = _ExportEntry()
    apply_section(field, EXPORT_ENTRY, entry)
    # nats-server drops such an entry without a word; it can only be a mistake.
    if not entry.kind:
        raise field.error("an export needs a `stream` or a `service` subject")
    if entry.kind == "stream" and entry.response_type:
        where = find_entry(field, "response", "response_type")
        raise where.error("Detected response directive on non-service")
    return Export(
        entry.subject, entry.kind == "service", entry.accounts, entry.response_type or "Singleton"
    )


def _export_subject(kind: str) -> Callable[[_ExportEntry, Field], None]:
    """The `stream` or `service` key of an export: its subject, and which of the two it is."""

    def apply(entry: _ExportEntry, field: Field) -> None:
        if entry.kind and entry.kind != kind:
            raise field.error(
                f"Detected {kind} {_quote(field.value)} but already saw a {entry.kind}"
            )
        if not isinstance(field.value, str):
            raise field.error(f"Expected {kind} name to be string, got {describe(field.value)}")
        # nats-server takes any string; an invalid subject would never match anything.
        problem = subject_problem(field.value, queue_allowed=False)
        if problem:
            raise field.error(problem)
        entry.kind, entry.subject = kind, field.value

    return apply


def _apply_response_type(entry: _ExportEntry, field: Field) -> None:
    if entry.response_type:
        raise field.error("Duplicate response type definition")
    if not isinstance(field.value, str):
        raise field.error(f"Expected response type to be string, got {describe(field.value)}")
    response_type = _RESPONSE_TYPES.get(field.value.lower())
    if response_type is None:
        raise field.error(f"Unknown response type: {_quote(field.value)}")
    entry.response_type = response_type


def _read_account_names(field: Field) -> list[str]:
    """An export's `accounts`: an array, as nats-server insists (a bare name is refused)."""
    if not isinstance(field.value, list):
        raise expected(field, "an array [ ] of account names")
    return [read_string(field.item(index, node)) for index, node in enumerate(field.value)]


def _check_exports(
    accounts_field: Field, account: AccountOptions, accounts: Mapping[str, AccountOptions]
) -> None:
    block = _account_field(accounts_field, account.name)
    for index, export in enumerate(account.exports):
        kind = "service" if export.service else "stream"
        for name in export.accounts:
            if name not in accounts:
                where = find_entry(_item(block, "exports", index), "accounts")
                raise where.error(f"{_quote(name)} account not defined for {kind} export")


# --- imports --------------------------------------------------------------------------------


@dataclass
class _ImportEntry:
    """One `imports` entry as read; the order of its keys does not matter."""

    kind: str = ""  # "stream" or "service", once seen
    account: str = ""
    subject: str = ""
    to: str = ""
    prefix: str = ""


def _read_imports(field: Field) -> list[Import]:
    if not isinstance(field.value, list):
        raise field.error(f"Imports should be an array, got {describe(field.value)}")
    return [_read_import(field.item(index, node)) for index, node in enumerate(field.value)]


def _read_import(field: Field) -> Import:
    if not isinstance(field.value, dict):
        raise field.error(
            f"Import Items should be a map with type entry, got {describe(field.value)}"
        )
    entry = _ImportEntry()
    apply_section(field, IMPORT_ENTRY, entry)
    # nats-server drops such an entry without a word; it can only be a mistake.
    if not entry.kind:
        raise field.error("an import needs a `stream` or a `service` block { account, subject }")
    if entry.kind == "service":
        return _service_import(field, entry)
    return _stream_import(field, entry)


def _service_import(field: Field, entry: _ImportEntry) -> Import:
    # nats-server ignores a prefix here; the operator meant to rename the service.
    if entry.prefix:
        raise find_entry(field, "prefix").error(
            "prefix applies to stream imports only; a service import is renamed with `to`"
        )
    for subject, key in ((entry.subject, "service"), (entry.to, "to")):
        if subject and subject_problem(subject, queue_allowed=False):
            raise find_entry(field, key).error(
                f"Error adding service import {_quote(entry.subject)}: sublist: invalid subject"
            )
    return Import(entry.account, entry.subject, service=True, to=entry.to)


def _stream_import(field: Field, entry: _ImportEntry) -> Import:
    if entry.prefix and entry.to:
        raise find_entry(field, "to").error(
            "Stream import can not have a 'prefix' and a 'to' property"
        )
    problem = subject_problem(entry.subject, queue_allowed=False)
    if problem:
        raise find_entry(field, "stream").error(problem)
    # nats-server appends the separator unless it is there: `p` and `p.` are the same prefix.
    prefix = entry.prefix.removesuffix(".")
    if entry.prefix:
        where = find_entry(field, "prefix")
        if not is_literal(prefix):
            raise where.error(
                f"Error adding stream import {_quote(entry.subject)}: "
                "stream import prefix can not contain wildcard tokens"
            )
        problem = subject_problem(f"{prefix}.{entry.subject}", queue_allowed=False)
        if problem:
            raise where.error(problem)
    if entry.to:
        problem = subject_problem(entry.to, queue_allowed=False)
        if problem:
            raise find_entry(field, "to").error(problem)
    return Import(entry.account, entry.subject, to=entry.to, prefix=prefix)


def _import_source(kind: str) -> Callable[[_ImportEntry, Field], None]:
    """The `stream` or `service` key of an import: `{ account, subject }`."""

    def apply(entry: _ImportEntry, field: Field) -> None:
        if entry.kind and entry.kind != kind:
            raise field.error(f"Detected {kind} but already saw a {entry.kind}")
        if not isinstance(field.value, dict):
            raise field.error(
                f"{kind.capitalize()} entry should be an account map, got {describe(field.value)}"
            )
        apply_section(field, IMPORT_SOURCE, entry)
        if not entry.account or not entry.subject:
            raise field.error("Expect an account name and a subject")
        entry.kind = kind

    return apply


def _check_imports(
    accounts_field: Field, account: AccountOptions, accounts: Mapping[str, AccountOptions]
) -> None:
    """Each import names an account that exists and exports the subject to this one."""
    block = _account_field(accounts_field, account.name)
    streams: set[tuple[str, str]] = set()
    services: dict[tuple[str, str], Import] = {}  # (exporter, local subject) -> first import
    for index, imp in enumerate(account.imports):
        kind = "service" if imp.service else "stream"
        where = find_entry(_item(block, "imports", index), kind)
        if imp.service:
            # Two imports of one exporter may not answer the same local subject.
            local = imp.to or imp.subject
            first = services.setdefault((imp.account, local), imp)
            if first is not imp:
                raise where.error(
                    f"Duplicate service import subject {_quote(local)}, previously used in "
                    f"import for account {_quote(first.account)}, subject {_quote(first.subject)}"
                )
        exporter = accounts.get(imp.account)
        if exporter is None:
            raise where.error(f"{_quote(imp.account)} account not defined for {kind} import")
        if not _authorized(exporter, account.name, imp):
            raise where.error(
                f"Error adding {kind} import {_quote(imp.subject)}: {kind} import not authorized"
            )
        if not imp.service:
            if (imp.account, imp.subject) in streams:
                raise where.error(
                    f"Error adding stream import {_quote(imp.subject)}: "
                    "stream import already exists"
                )
            streams.add((imp.account, imp.subject))


def _authorized(exporter: AccountOptions, importer: str, imp: Import) -> bool:
    """nats-server's check: an export of exactly the subject decides; otherwise one whose
    subject covers the imported one. Exports of one subject merge, as in nats-server's map:
    public unless one of them names accounts. (Where several covering exports disagree,
    nats-server asks whichever its map yields first; any one approving suffices here.)"""
    by_subject: dict[str, list[str]] = {}
    for export in exporter.exports:
        if export.service == imp.service:
            by_subject.setdefault(export.subject, []).extend(export.accounts)
    if imp.subject in by_subject:
        candidates = [by_subject[imp.subject]]
    else:
        candidates = [
            approved for subject, approved in by_subject.items() if is_subset(imp.subject, subject)
        ]
    return any(not approved or importer in approved for approved in candidates)


# --- the tables -----------------------------------------------------------------------------

EXPORTS = Kind("array of exports", _read_exports)
IMPORTS = Kind("array of imports", _read_imports)
ACCOUNT_NAMES = Kind("array of account names", _read_account_names)
LIMIT = Kind("number (a bare size literal such as 1G)", _read_limit)
FLAG = Kind("boolean", _read_flag)

ACCOUNT_JETSTREAM = Section(
    AccountJetStream,
    (
        Key("max_memory", LIMIT, "max_memory", aliases=("max_mem", "mem", "memory")),
        Key("max_file", LIMIT, "max_file", aliases=("max_store", "max_disk", "store", "disk")),
        Key("max_streams", LIMIT, "max_streams", aliases=("streams",)),
        Key("max_consumers", LIMIT, "max_consumers", aliases=("consumers",)),
        # nats-server's aliases, the second one misleading as it is.
        Key(
            "max_bytes_required",
            FLAG,
            "max_bytes_required",
            aliases=("max_stream_bytes", "max_bytes"),
        ),
        Key("max_ack_pending", LIMIT, "max_ack_pending"),
        Key(
            "mem_max_stream_bytes",
            LIMIT,
            "memory_max_stream_bytes",
            aliases=("memory_max_stream_bytes",),
        ),
        Key(
            "disk_max_stream_bytes",
            LIMIT,
            "storage_max_stream_bytes",
            aliases=("store_max_stream_bytes",),
        ),
    ),
    unsupported.ACCOUNT_JETSTREAM,
)
EXPORT_ENTRY = Section(
    _ExportEntry,
    (
        Key("stream", apply=_export_subject("stream")),
        Key("service", apply=_export_subject("service")),
        Key("accounts", ACCOUNT_NAMES, "accounts"),
        Key("response_type", aliases=("response",), apply=_apply_response_type),
    ),
    unsupported.EXPORT,
)
IMPORT_SOURCE = Section(
    _ImportEntry,
    (
        Key("account", STRING, "account"),
        Key("subject", STRING, "subject"),
    ),
)
IMPORT_ENTRY = Section(
    _ImportEntry,
    (
        Key("stream", apply=_import_source("stream")),
        Key("service", apply=_import_source("service")),
        Key("prefix", STRING, "prefix"),
        Key("to", STRING, "to"),
    ),
    unsupported.IMPORT,
)
ACCOUNT = Section(
    _Account,
    (
        Key("users", USERS, "users"),
        Key("default_permissions", PERMISSIONS_BLOCK, "default_permissions"),
        Key("jetstream", apply=_apply_jetstream),
        Key("exports", EXPORTS, "exports"),
        Key("imports", IMPORTS, "imports"),
    ),
    unsupported.ACCOUNT,
)

