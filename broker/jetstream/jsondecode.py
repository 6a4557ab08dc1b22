"""Decoding API request JSON into dataclasses the way Go's encoding/json would accept it.

Each field declares its JSON type; a value of the wrong type is an error (Go refuses it too), a
`null` leaves the default, and unknown fields are reported so the caller can log them (lenient,
the default) or refuse them (`jetstream { strict: true }`).
"""

from __future__ import annotations

import json
from dataclasses import MISSING, field, fields
from typing import Any, TypeVar

from broker.jetstream import errors
from broker.jetstream.errors import ApiError

T = TypeVar("T")
# A decoded JSON object: an API request or response body (values are whatever JSON holds).
JsonObject = dict[str, Any]

INT = "int"
UINT = "uint"
BOOL = "bool"
STR = "str"
STR_LIST = "str_list"
STR_MAP = "str_map"
INT_LIST = "int_list"
OBJECT = "object"
OBJECT_LIST = "object_list"


def json_field(kind: str, default: Any = None, factory: Any = None) -> Any:
    """A dataclass field decoded from JSON as `kind` (see `decode`)."""
    if factory is not None:
        return field(default_factory=factory, metadata={"json": kind})
    return field(default=default, metadata={"json": kind})


def parse_json(payload: bytes, allow_empty: bool = True) -> dict[str, Any]:
    """The request body as a JSON object; an empty body (or `""`) counts as `{}` (ADR-1)."""
    text = payload.strip()
    if not text or text == b'""':
        if allow_empty:
            return {}
        raise errors.invalid_json("empty request")
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise errors.invalid_json(str(exc)) from None
    if not isinstance(data, dict):
        raise errors.invalid_json("json: cannot unmarshal into an object")
    return data


def decode(cls: type[T], data: dict[str, Any], unknown: list[str] | None = None,
           type_name: str = "") -> T:
    """Build `cls` from `data`. Fields carry `metadata={"json": KIND}`; unknown keys are appended
    to `unknown` (when given)."""
    values: dict[str, Any] = {}
    known = set()
    for f in fields(cls):  # type: ignore[arg-type]
        kind = f.metadata.get("json")
        if kind is None:
            continue
        known.add(f.name)
        if f.name not in data or data[f.name] is None:
            continue
        values[f.name] = _check(data[f.name], kind, f"{type_name or cls.__name__}.{f.name}")
    if unknown is not None:
        unknown.extend(k for k in data if k not in known)
    return cls(**values)


def _check(value: Any, kind: str, where: str) -> Any:
    ok = {
        INT: lambda v: isinstance(v, int) and not isinstance(v, bool),
        UINT: lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0,
        BOOL: lambda v: isinstance(v, bool),
        STR: lambda v: isinstance(v, str),
        STR_LIST: lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v),
        INT_LIST: lambda v: isinstance(v, list) and all(
            isinstance(x, int) and not isinstance(x, bool) for x in v),
        STR_MAP: lambda v: isinstance(v, dict) and all(isinstance(x, str) for x in v.values()),
        OBJECT: lambda v: isinstance(v, dict),
        OBJECT_LIST: lambda v: isinstance(v, list) and all(isinstance(x, dict) for x in v),
    }[kind]
    if isinstance(value, float) and kind in (INT, UINT) and value.is_integer():
        value = int(value)  # JSON has one number type; 5.0 decodes into an int in Go too
    if not ok(value):
        raise errors.invalid_json(
            f"json: cannot unmarshal {_json_type(value)} into Go struct field {where}")
    return value


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def unknown_fields_error(unknown: list[str]) -> ApiError:
    """Strict mode (2.11's wording, which names the field)."""
    return ApiError(400, 10025, f'invalid JSON: json: unknown field "{unknown[0]}"')


def default_of(cls: type, name: str) -> Any:
    for f in fields(cls):
        if f.name == name:
            if f.default is not MISSING:
                return f.default
            if f.default_factory is not MISSING:
                return f.default_factory()
    raise KeyError(name)
