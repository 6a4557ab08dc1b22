"""Declarative key tables and the one function that applies them.

A block of the config file (the top level, `cluster { }`, `jetstream { }`, ...) is a `Section`:
a tuple of `Key` rows plus the keys it refuses by name. A row says which spellings it answers
to, what kind of value it takes (a `Kind`: bool, int, duration, ...), which attribute(s) of the
target dataclass it sets, and the few extras nats-server has: bounds, "0 means the default",
"may be set only once", a `refine` step for one key's own rule, a nested block, or, for the
handful of keys that fill several attributes at once, a custom `apply`.

    Key("max_payload", INT, "max_payload", minimum=0, maximum=INT32_MAX, zero_is_default=True),
    Key("max_connections", INT, "max_connections", aliases=("max_conn",), minimum=0, ...),
    Key("cluster", block=CLUSTER, into="cluster"),

`apply_section` runs a section against its target. Keys match case-insensitively, as in
nats-server; every problem raises `ConfigError` naming file, line, column and key.
"""

from __future__ import annotations

import dataclasses
import functools
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from config.errors import ConfigError
from config.values import (
    Field,
    at_least,
    at_most,
    read_bool,
    read_duration,
    read_host_port,
    read_int,
    read_map,
    read_port,
    read_string,
    read_string_map,
    read_strings,
)

Reader = Callable[[Field], Any]
# A key's own rule, run on the value read (after bounds and defaults): returns what to store.
Refine = Callable[[Field, Any], Any]
# A key that fills its target in its own way. The target's type differs per section, hence Any.
Apply = Callable[[Any, Field], None]


@dataclass(frozen=True)
class Kind:
    """What a key's value must look like: `read` checks it and returns it as Python data.

    `parts` > 1: the reader returns a tuple that fills that many attributes, one each
    (`"host:port"` -> host, port). Otherwise the one value goes to every attribute of the key.
    """

    name: str
    read: Reader
    parts: int = 1


BOOL = Kind("bool", read_bool)
INT = Kind("int", read_int)
PORT = Kind("port (-1 random, 0-65535)", read_port)
DURATION = Kind("duration", read_duration)
STRING = Kind("string", read_string)
STRINGS = Kind("string or array of strings", read_strings)
STRING_MAP = Kind("block of strings", read_string_map)
HOST_PORT = Kind("port or host:port", read_host_port, parts=2)


@dataclass(frozen=True)
class Key:
    """One row of a section: a config key, its aliases, and how it sets its target.

    Exactly one of `kind` (a value), `block` (a nested section) or `apply` (custom) says what
    the key takes.
    """

    name: str
    kind: Kind | None = None
    # The target attribute(s) the value is stored in; dotted for a nested object.
    to: str | tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()
    minimum: int | None = None
    maximum: int | None = None
    # nats-server's "0 (or empty) means the default": the target dataclass's default.
    zero_is_default: bool = False
    # A second setting of the attribute is an error (`store_dir`, settable in two places).
    once: bool = False
    refine: Refine | None = None
    block: Section | None = None
    # The attribute of the target that a `block` fills; "" for the target itself.
    into: str = ""
    apply: Apply | None = None

    @property
    def names(self) -> tuple[str, ...]:
        return (self.name, *self.aliases)

    @property
    def attrs(self) -> tuple[str, ...]:
        return (self.to,) if isinstance(self.to, str) else self.to


@dataclass(frozen=True)
class Section:
    """The keys of one block, for targets of type `target`, and the keys refused by name.

    `unsupported` maps a key nats-server knows but this server does not implement to why
    ("" for no detail). Building a section checks its rows against `target`'s fields.
    """

    target: type
    keys: tuple[Key, ...]
    unsupported: Mapping[str, str] = dataclasses.field(default_factory=dict)
    by_name: Mapping[str, Key] = dataclasses.field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_name: dict[str, Key] = {}
        for key in self.keys:
            _check_key(self.target, key)
            for name in key.names:
                if name != name.lower() or name in by_name or name in self.unsupported:
                    raise TypeError(f"{self.target.__name__}: key {name!r} listed twice or cased")
                by_name[name] = key
        object.__setattr__(self, "by_name", by_name)


def apply_section(section_field: Field, section: Section, target: Any) -> None:
    """Run every key of the block `section_field` against `target`, in file order."""
    for name, node in read_map(section_field).items():
        field = section_field.child(name, node)
        lowered = name.lower()
        key = section.by_name.get(lowered)
        if key is not None:
            apply_key(key, target, field)
            continue
        if lowered in section.unsupported:
            raise unsupported(field, section.unsupported[lowered])
        # Entries referenced as `$name` are variable definitions, not settings (nats-server).
        if node.used_as_variable:
            continue
        raise ConfigError.unknown_field(name, node.where, field.path)


def apply_key(key: Key, target: Any, field: Field) -> None:
    """Check one key's value and store it: the single place every row's options take effect."""
    if key.apply is not None:
        key.apply(target, field)
        return
    if key.block is not None:
        apply_section(field, key.block, _resolve(target, key.into))
        return
    assert key.kind is not None  # _check_key: a row without apply or block has a kind
    if key.once:
        for attr in key.attrs:
            owner, leaf = _owner(target, attr)
            if getattr(owner, leaf):
                raise field.error(f"Duplicate '{leaf}' configuration")
    value = key.kind.read(field)
    if key.minimum is not None:
        value = at_least(field, value, key.minimum)
    if key.maximum is not None:
        value = at_most(field, value, key.maximum)
    if key.zero_is_default:
        value = _zero_to_default(key, target, value)
    if key.refine is not None:
        value = key.refine(field, value)
    for attr, part in zip(key.attrs, _parts(key, value), strict=True):
        owner, leaf = _owner(target, attr)
        setattr(owner, leaf, part)


def unsupported(field: Field, detail: str) -> ConfigError:
    """`<key> is not supported by this server[: why]`: a feature the operator asked for."""
    problem = f"{field.name} is not supported by this server"
    return field.error(f"{problem}: {detail}" if detail else problem)


# --- attributes -----------------------------------------------------------------------------


def _parts(key: Key, value: Any) -> tuple[Any, ...]:
    """The value of each of the key's attributes."""
    if key.kind is not None and key.kind.parts > 1:
        return tuple(value)
    return (value,) * len(key.attrs)


def _zero_to_default(key: Key, target: Any, value: Any) -> Any:
    """nats-server's "0 (or empty) means the default", per attribute: the dataclass default."""
    parts = []
    for attr, part in zip(key.attrs, _parts(key, value), strict=True):
        owner, leaf = _owner(target, attr)
        parts.append(part or _default(type(owner), leaf))
    return tuple(parts) if len(parts) > 1 else parts[0]


def _resolve(target: Any, dotted: str) -> Any:
    for part in dotted.split(".") if dotted else ():
        target = getattr(target, part)
    return target


def _owner(target: Any, dotted: str) -> tuple[Any, str]:
    """The object holding the attribute `dotted`, and the attribute's own name."""
    path, _, leaf = dotted.rpartition(".")
    return _resolve(target, path), leaf


@functools.cache
def _fields(cls: type) -> dict[str, dataclasses.Field[Any]]:
    return {item.name: item for item in dataclasses.fields(cls)}


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _default(cls: type, name: str) -> Any:
    return _fields(cls)[name].default


def _attribute_type(target: type, dotted: str) -> type:
    """The type of `target`'s (dotted) attribute; TypeError if a part is not a field."""
    cls = target
    for part in dotted.split(".") if dotted else ():
        if not dataclasses.is_dataclass(cls) or part not in _fields(cls):
            raise TypeError(f"{target.__name__} has no field {dotted!r}")
        cls = _hints(cls)[part]
    return cls


def _check_key(target: type, key: Key) -> None:
    """A row must name real fields of its target: setattr would not catch a typo."""
    if key.apply is not None:
        if key.kind or key.block or key.attrs:
            raise TypeError(f"{key.name}: a custom apply takes no kind, block or attributes")
        return
    if key.block is not None:
        if key.kind or key.attrs:
            raise TypeError(f"{key.name}: a block fills `into`; it takes no kind or attributes")
        if _attribute_type(target, key.into) is not key.block.target:
            raise TypeError(f"{key.name}: {key.into!r} does not hold a {key.block.target}")
        return
    if key.kind is None:
        raise TypeError(f"{key.name}: needs a kind, a block or an apply")
    if key.kind.parts > 1 and len(key.attrs) != key.kind.parts:
        raise TypeError(f"{key.name}: {key.kind.name} fills {key.kind.parts} attributes")
    if key.zero_is_default and key.kind.parts != len(key.attrs):
        raise TypeError(f"{key.name}: zero_is_default needs one attribute per part")
    for attr in key.attrs:
        _attribute_type(target, attr)
        if key.zero_is_default:
            path, _, leaf = attr.rpartition(".")
            if _default(_attribute_type(target, path), leaf) is dataclasses.MISSING:
                raise TypeError(f"{key.name}: {attr} has no default for zero to mean")
