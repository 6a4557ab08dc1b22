"""The parsed-but-not-validated form shared by the nats.conf and YAML readers.

Both readers produce `dict[str, Node]`: every value, down to array elements, keeps the place it
came from so validation can say `file:line:col: key: problem` long after parsing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

# A scalar as the readers produce it. Integers are already multiplied out (`1k` -> 1000).
Scalar = str | bool | int | float | datetime | None


@dataclass(frozen=True)
class Position:
    """Where a token starts. `line`/`column` are 1-based; 0 means unknown."""

    file: str
    line: int = 0
    column: int = 0

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


@dataclass(eq=False)
class Node:
    """One value of the tree: a scalar, `dict[str, Node]` or `list[Node]`.

    `raw` is the source text of a scalar (`2m` for 2000000) so validation can refuse a size
    literal where a duration was meant. `key_pos` is where the key of a map entry starts: errors
    about an entry point at its key, as nats-server's do. `used_as_variable` is set when a later
    `$NAME` referred to this entry: such entries are variable definitions, not unknown keys.
    """

    value: Any
    pos: Position
    raw: str = ""
    key_pos: Position | None = None
    used_as_variable: bool = False

    @property
    def where(self) -> Position:
        """The position errors about this value should name."""
        return self.key_pos or self.pos


ConfigMap = dict[str, Node]


def to_plain(value: Any) -> Any:
    """Strip positions: `Node` trees become plain dicts, lists and scalars (tests, debugging)."""
    if isinstance(value, Node):
        return to_plain(value.value)
    if isinstance(value, Mapping):
        return {key: to_plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [to_plain(item) for item in value]
    return value


def from_plain(value: Any, source: str) -> Node:
    """Wrap plain Python data (e.g. from JSON or code) as a tree whose positions are unknown."""
    pos = Position(source)
    if isinstance(value, Node):
        return value
    if isinstance(value, Mapping):
        return Node({str(key): from_plain(item, source) for key, item in value.items()}, pos)
    if isinstance(value, list | tuple):
        return Node([from_plain(item, source) for item in value], pos)
    return Node(value, pos, raw=str(value))
