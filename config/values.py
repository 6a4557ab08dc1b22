"""One key's value as it is validated: a `Field` (value plus where it came from) and the readers
that check a value has the expected shape and return it, with nats-server's error texts.

Every reader raises `ConfigError` naming file, line, column and the dotted key.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any

from config.errors import ConfigError
from config.nodes import ConfigMap, Node
from config.units import parse_duration


@dataclass(frozen=True)
class Field:
    """One key's value being validated. `path` is the dotted key (`cluster.routes[1]`)."""

    name: str
    path: str
    node: Node

    @property
    def value(self) -> Any:
        return self.node.value

    def error(self, problem: str) -> ConfigError:
        return ConfigError(problem, self.node.where, self.path)

    def child(self, name: str, node: Node) -> Field:
        return Field(name, f"{self.path}.{name}" if self.path else name, node)

    def item(self, index: int, node: Node) -> Field:
        return Field(self.name, f"{self.path}[{index}]", node)


def describe(value: Any) -> str:
    """How an error names a value it did not expect."""
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, int):
        return f"the integer {value}"
    if isinstance(value, float):
        return f"the float {value}"
    if isinstance(value, str):
        return f"the string {value!r}"
    if isinstance(value, date):  # datetime too; YAML also yields plain dates
        return "a date"
    if isinstance(value, dict):
        return "a block { }"
    if isinstance(value, list):
        return "an array [ ]"
    return f"a value of type {type(value).__name__}"


def expected(field: Field, what: str) -> ConfigError:
    return field.error(f"expected {what}, got {describe(field.value)}")


def read_string(field: Field) -> str:
    if not isinstance(field.value, str):
        raise expected(field, "a string")
    return field.value


def read_bool(field: Field) -> bool:
    if not isinstance(field.value, bool):
        raise expected(field, "a boolean (true/false, yes/no, on/off)")
    return field.value


def read_int(field: Field) -> int:
    if isinstance(field.value, bool) or not isinstance(field.value, int):
        raise expected(field, "an integer")
    return field.value


def read_map(field: Field) -> ConfigMap:
    if not isinstance(field.value, dict):
        raise expected(field, "a block { }")
    return field.value


def read_list(field: Field) -> list[Node]:
    if not isinstance(field.value, list):
        raise expected(field, "an array [ ]")
    return field.value


def read_strings(field: Field) -> list[str]:
    """A string or an array of strings."""
    if isinstance(field.value, str):
        return [field.value]
    if not isinstance(field.value, list):
        raise expected(field, "a string or an array of strings")
    return [read_string(field.item(index, node)) for index, node in enumerate(field.value)]


def read_string_map(field: Field) -> dict[str, str]:
    """A block whose every value is a string (`server_metadata { team: core }`)."""
    return {name: read_string(field.child(name, node)) for name, node in read_map(field).items()}


def at_least(field: Field, value: int, minimum: int) -> int:
    if value < minimum:
        raise field.error(f"{value} is out of range: must be at least {minimum}")
    return value


def at_most(field: Field, value: int, maximum: int) -> int:
    if value > maximum:
        raise field.error(f"{field.name} value is too big (maximum {maximum})")
    return value


def port_number(field: Field, port: int) -> int:
    """-1 asks for a random port; 0 means the default (or "off" where there is no default)."""
    if not -1 <= port <= 65535:
        raise field.error(f"port {port} is out of range: must be -1 (random) or 0-65535")
    return port


def read_port(field: Field) -> int:
    return port_number(field, read_int(field))


def read_duration(field: Field) -> float:
    """A Go duration string (`"2m"`, `"1h30m"`) or a bare number of seconds.

    A bare literal with a size suffix is refused: unquoted, `2m` is the integer 2000000 (m is
    "million"), which nats-server would silently take as 23 days of seconds.
    """
    value = field.value
    if isinstance(value, str):
        try:
            seconds = parse_duration(value)
        except ValueError as exc:
            raise field.error(f"error parsing {field.name}: {exc}") from exc
    elif isinstance(value, int | float) and not isinstance(value, bool):
        if isinstance(value, int) and re.search(r"[a-zA-Z]", field.node.raw):
            raise field.error(
                f"{field.node.raw} without quotes is the number {value}, not a duration: "
                f'write "{field.node.raw}" in quotes'
            )
        seconds = float(value)
    else:
        raise expected(field, 'a duration such as "30s" or "2m", or a number of seconds')
    if seconds < 0:
        raise field.error(f"{field.name} must not be negative")
    return seconds


def split_host_port(field: Field, text: str) -> tuple[str, int]:
    """Go's net.SplitHostPort plus a numeric port: `host:port`, `:port`, `[::1]:port`."""
    match = re.fullmatch(r"\[([^\]]*)\]:([^:]*)|([^:\[\]]*):([^:]*)", text)
    if match is None:
        raise field.error(f"could not parse address string {text!r}: expected host:port")
    host = match.group(1) if match.group(1) is not None else match.group(3)
    port_text = match.group(2) if match.group(2) is not None else match.group(4)
    if not re.fullmatch(r"[+-]?\d+", port_text):
        raise field.error(f"could not parse port {port_text!r}")
    return host, port_number(field, int(port_text))


def read_host_port(field: Field) -> tuple[str, int]:
    """`listen`/`http`: a port, or "host:port" (the host may be empty: ":4222")."""
    if isinstance(field.value, str):
        return split_host_port(field, field.value)
    if isinstance(field.value, int) and not isinstance(field.value, bool):
        return "", port_number(field, field.value)
    raise expected(field, 'a port or "host:port"')


def no_spaces(what: str) -> Callable[[Field, str], str]:
    """A refine step refusing a name with spaces: `<what> cannot contain spaces`."""

    def refine(field: Field, value: str) -> str:
        if " " in value:
            raise field.error(f"{what} cannot contain spaces")
        return value

    return refine
