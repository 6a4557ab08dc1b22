"""The `authorization { }` block: single user, token, or a `users` array, and subject permissions.

The same block shape serves the top level (`apply_authorization` fills `Options`) and the
cluster (`config.cluster` reads it with `parse_auth` and applies its own, stricter, rules).
`config.accounts` reads an account's `users` and `default_permissions` with the `USERS` and
`PERMISSIONS_BLOCK` kinds, and checks export/import subjects with `subject_problem`.
"""

from __future__ import annotations

from dataclasses import dataclass

from common.nkeys import is_public_user_key
from config import unsupported
from config.options import Options, Permissions, User
from config.table import DURATION, INT, STRING, Key, Kind, Section, apply_section
from config.values import Field, expected, read_list, read_map, read_strings

DEFAULT_AUTH_TIMEOUT = 2.0


@dataclass
class Auth:
    """The contents of an `authorization { }` block before the checks that combine keys."""

    user: str = ""
    password: str = ""
    token: str = ""
    timeout: float = 0.0
    users: list[User] | None = None  # None: no `users` key (nats-server tells [] apart)
    default_permissions: Permissions | None = None


def parse_auth(field: Field) -> Auth:
    auth = Auth()
    apply_section(field, AUTH_BLOCK, auth)
    # `default_permissions` apply to the users that have none of their own (nats-server).
    for user in auth.users or []:
        if user.permissions is None and auth.default_permissions is not None:
            user.permissions = auth.default_permissions
    return auth


def apply_authorization(options: Options, field: Field) -> None:
    """The top-level `authorization` key: nats-server's rules on combining its keys."""
    auth = parse_auth(field)
    if (auth.user or auth.password) and auth.token:
        raise field.error("Cannot have a user/pass and token")
    if auth.users is not None:
        if auth.user:
            raise field.error("Can not have a single user/pass and a users array")
        if auth.token:
            raise field.error("Can not have a token and a users array")
    options.username = auth.user
    options.password = auth.password
    options.authorization = auth.token
    options.auth_timeout = auth.timeout or DEFAULT_AUTH_TIMEOUT
    options.users = auth.users or []


# --- users ----------------------------------------------------------------------------------


def _read_users(field: Field) -> list[User]:
    """`users: [ {user, password, permissions}, {nkey, permissions} ]`, no name twice."""
    users: list[User] = []
    for index, node in enumerate(read_list(field)):
        user = _read_user(field.item(index, node))
        if user.nkey and any(known.nkey == user.nkey for known in users):
            raise field.item(index, node).error(f'Duplicate nkey "{user.nkey}" detected')
        if user.user and any(known.user == user.user for known in users):
            raise field.item(index, node).error(f'Duplicate user "{user.user}" detected')
        users.append(user)
    return users


def _read_user(field: Field) -> User:
    if not isinstance(field.value, dict):
        raise expected(field, "a user entry { user: ..., password: ... }")
    user = User(user="")
    apply_section(field, USER_ENTRY, user)
    if user.nkey:
        if user.user or user.password:
            raise field.error("Nkey users do not take usernames or passwords")
        return user
    if not user.user:
        raise field.error("User entry requires a user")
    return user


def _valid_user_nkey(field: Field, nkey: str) -> str:
    if not is_public_user_key(nkey):
        raise field.error("Not a valid public nkey for a user")
    return nkey


# --- permissions ----------------------------------------------------------------------------


def _read_permissions(field: Field) -> Permissions:
    permissions = Permissions()
    read_map(field)
    apply_section(field, PERMISSIONS, permissions)
    return permissions


def _subjects(field: Field, queue_allowed: bool) -> list[str]:
    """A subject or an array of subjects, each valid (subscribe may name `subject queue`)."""
    subjects = read_strings(field)
    for subject in subjects:
        problem = subject_problem(subject, queue_allowed)
        if problem:
            raise field.error(problem)
    return subjects


def subject_problem(subject: str, queue_allowed: bool) -> str:
    """Why `subject` is not a valid subject (or `subject queue`), or "" when it is."""
    if _valid_subject(subject):
        return ""
    parts = subject.split()
    if not queue_allowed or len(parts) != 2:
        return f"subject {subject!r} is not a valid subject"
    if not _valid_subject(parts[0]):
        return f"subject {parts[0]!r} is not a valid subject"
    if not _valid_subject(parts[1]):
        return f"queue {parts[1]!r} is not a valid queue"
    return ""


def _valid_subject(subject: str) -> bool:
    """nats-server's IsValidSubject: non-empty tokens, no white space, `>` only last."""
    if not subject or any(char in subject for char in " \t\n\r\f"):
        return False
    tokens = subject.split(".")
    return all(tokens) and ">" not in tokens[:-1]


def _allow_deny(field: Field, queue_allowed: bool) -> tuple[list[str], list[str]]:
    """`publish: "a.>"`, `publish: [a, b]` (allow lists) or `publish: {allow: .., deny: ..}`."""
    if not isinstance(field.value, dict):
        return _subjects(field, queue_allowed), []
    allow: list[str] = []
    deny: list[str] = []
    for name, node in field.value.items():
        child = field.child(name, node)
        if name.lower() == "allow":
            allow = _subjects(child, queue_allowed)
        elif name.lower() == "deny":
            deny = _subjects(child, queue_allowed)
        elif not node.used_as_variable:
            raise child.error(
                f"Unknown field name {name!r} parsing subject permissions, "
                "only 'allow' or 'deny' are permitted"
            )
    return allow, deny


def _read_publish(field: Field) -> tuple[list[str], list[str]]:
    return _allow_deny(field, queue_allowed=False)


def _read_subscribe(field: Field) -> tuple[list[str], list[str]]:
    return _allow_deny(field, queue_allowed=True)


def _apply_allow_responses(permissions: Permissions, field: Field) -> None:
    """`true`/`false`, or `{ max: <msgs>, expires: "<duration>" }` (0 keeps the default)."""
    if isinstance(field.value, bool):
        permissions.allow_responses = field.value
        return
    if not isinstance(field.value, dict):
        raise expected(field, "a boolean or a block { max, expires }")
    permissions.allow_responses = True
    apply_section(field, ALLOW_RESPONSES, permissions)


# --- the tables -----------------------------------------------------------------------------

USERS = Kind("array of user entries", _read_users)
PERMISSIONS_BLOCK = Kind("permissions block", _read_permissions)
PUBLISH = Kind("subjects, or a block { allow, deny }", _read_publish, parts=2)
SUBSCRIBE = Kind("subjects (with queues), or a block { allow, deny }", _read_subscribe, parts=2)

ALLOW_RESPONSES = Section(
    Permissions,
    (
        # Negative means unlimited, 0 the default (nats-server).
        Key(
            "max",
            INT,
            "allow_responses_max_msgs",
            aliases=("max_msgs", "max_messages", "max_responses"),
            zero_is_default=True,
        ),
        Key(
            "expires",
            DURATION,
            "allow_responses_expires",
            aliases=("expiration", "ttl"),
            zero_is_default=True,
        ),
    ),
)
PERMISSIONS = Section(
    Permissions,
    (
        Key("publish", PUBLISH, ("publish_allow", "publish_deny"), aliases=("pub", "import")),
        Key(
            "subscribe", SUBSCRIBE, ("subscribe_allow", "subscribe_deny"), aliases=("sub", "export")
        ),
        Key("allow_responses", aliases=("publish_allow_responses",), apply=_apply_allow_responses),
    ),
)
USER_ENTRY = Section(
    User,
    (
        Key("user", STRING, "user", aliases=("username",)),
        Key("password", STRING, "password", aliases=("pass",)),
        Key("nkey", STRING, "nkey", refine=_valid_user_nkey),
        Key(
            "permissions",
            PERMISSIONS_BLOCK,
            "permissions",
            aliases=("permission", "authorization"),
        ),
    ),
    unsupported.USER,
)
AUTH_BLOCK = Section(
    Auth,
    (
        Key("user", STRING, "user", aliases=("username",)),
        Key("password", STRING, "password", aliases=("pass",)),
        Key("token", STRING, "token"),
        # Seconds as a number (int or float), or a duration string.
        Key("timeout", DURATION, "timeout"),
        Key("users", USERS, "users"),
        Key(
            "default_permissions",
            PERMISSIONS_BLOCK,
            "default_permissions",
            aliases=("default_permission", "permissions"),
        ),
    ),
    unsupported.AUTHORIZATION,
)
