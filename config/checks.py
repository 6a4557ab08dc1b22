"""Rules that combine keys, run once every key of the file is in.

Each error points at the key that breaks the rule (the last spelling of it in the file).
"""

from __future__ import annotations

from config.accounts import account_user_field, duplicate_user_problem
from config.accounts import find_entry as _find  # the last spelling of a key; `top` if none
from config.operator import check_operator_mode
from config.options import GLOBAL_ACCOUNT, Options, User
from config.values import Field


def check_options(options: Options, top: Field) -> None:
    """Every whole-file rule, first failure wins; `top` is the file's top-level block."""
    check_operator_mode(options, top, _find(top, "system_account", "system"))
    _check_account_users(options, top)
    _check_system_account(options, top)
    _check_no_auth_user(options, top)
    _check_payload_fits_pending(options, top)
    _check_jetstream_cluster(options, top)


def _all_users(options: Options) -> list[User]:
    """The users of `authorization` (the global account's) and of every account."""
    return [*options.users, *(user for account in options.accounts for user in account.users)]


def _check_account_users(options: Options, top: Field) -> None:
    """nats-server takes users in `accounts` beside a users array in `authorization`, but not
    beside its single user or token, and no name (or nkey) in both."""
    accounts = _find(top, "accounts")
    global_users = {user.nkey or user.user for user in options.users}
    for account in options.accounts:
        for index, user in enumerate(account.users):
            field = account_user_field(accounts, account.name, index)
            if options.username:
                raise field.error("Can not have a single user/pass and accounts")
            if options.authorization:
                raise field.error("Can not have a token and accounts")
            if (user.nkey or user.user) in global_users:
                raise field.error(duplicate_user_problem(user))


def _check_system_account(options: Options, top: Field) -> None:
    """A system account named in the file must exist: declared in `accounts`, or the global
    account. Only the default (no name, or "") is created when missing, as in nats-server,
    which refuses to start otherwise."""
    field = _find(top, "system_account", "system")
    if field is top or field.value == "" or options.operators:
        return  # in operator mode the system account is one of the preloaded JWTs
    name = options.system_account
    if name != GLOBAL_ACCOUNT and all(account.name != name for account in options.accounts):
        raise field.error("error resolving system account: account missing")


def _check_no_auth_user(options: Options, top: Field) -> None:
    """`no_auth_user` names a user (or nkey) of `authorization` or of any account."""
    name = options.no_auth_user
    if not name:
        return
    field = _find(top, "no_auth_user")
    users = _all_users(options)
    if not users:
        raise field.error(f'"{name}" present, but users are not defined')
    if all(name not in (user.user, user.nkey) for user in users):
        raise field.error(
            f'"{name}" not present as user in authorization block or account configuration'
        )


def _check_payload_fits_pending(options: Options, top: Field) -> None:
    if options.max_payload <= options.max_pending:
        return
    field = _find(top, "max_payload")
    if field is top:  # only max_pending was lowered below the default max_payload
        field = _find(top, "max_pending")
    raise field.error(
        f"max_payload ({options.max_payload}) cannot be higher than "
        f"max_pending ({options.max_pending})"
    )


def _check_jetstream_cluster(options: Options, top: Field) -> None:
    """A clustered JetStream needs names: peers are identified by server and cluster name."""
    if not options.jetstream.enabled or options.cluster.port == 0:
        return
    if not options.server_name:
        raise _find(top, "jetstream").error("jetstream cluster requires `server_name` to be set")
    if not options.cluster.name:
        raise _find(top, "cluster").error("jetstream cluster requires `cluster.name` to be set")
