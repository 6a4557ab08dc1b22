"""Rules that combine keys, run once every key of the file is in.

Each error points at the key that breaks the rule (the last spelling of it in the file).
"""

from __future__ import annotations

from config.options import Options
from config.values import Field, read_map


def check_options(options: Options, top: Field) -> None:
    """Every whole-file rule, first failure wins; `top` is the file's top-level block."""
    _check_no_auth_user(options, top)
    _check_payload_fits_pending(options, top)
    _check_jetstream_cluster(options, top)


def _find(top: Field, *names: str) -> Field:
    """The last entry spelled as any of `names` (case-insensitive); the file if none."""
    found = top
    for name, node in read_map(top).items():
        if name.lower() in names:
            found = top.child(name, node)
    return found


def _check_no_auth_user(options: Options, top: Field) -> None:
    name = options.no_auth_user
    if not name:
        return
    field = _find(top, "no_auth_user")
    if not options.users:
        raise field.error(f'"{name}" present, but users are not defined')
    if all(name not in (user.user, user.nkey) for user in options.users):
        raise field.error(f'"{name}" not present as user in authorization block')


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
