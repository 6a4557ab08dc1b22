"""Parser for nats-server configuration files: tokens -> `dict[str, Node]`.

Beyond building the tree it does what nats-server's conf/parse.go does while parsing:
  * multiplies out size suffixes (`1k` = 1000, `1kb` = `1ki` = `1kib` = 1024, up to `e`/`eb`);
  * resolves `$NAME` (bare values only, never inside quotes): first a key defined earlier in
    this block or an enclosing one, else the environment variable NAME, whose text is parsed as
    a config value (`PORT=4222` gives the integer 4222). The referenced entry is marked
    `used_as_variable` so validation does not report it as an unknown key;
  * `include path`: parses the file (relative to the including file) and merges its top-level
    keys into the current block.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

from config.errors import ConfigError
from config.lexer import Kind, Token, lex
from config.nodes import ConfigMap, Node, Position

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1

SIZE_MULTIPLIERS = {
    "": 1,
    "k": 10**3,
    "kb": 2**10,
    "ki": 2**10,
    "kib": 2**10,
    "m": 10**6,
    "mb": 2**20,
    "mi": 2**20,
    "mib": 2**20,
    "g": 10**9,
    "gb": 2**30,
    "gi": 2**30,
    "gib": 2**30,
    "t": 10**12,
    "tb": 2**40,
    "ti": 2**40,
    "tib": 2**40,
    "p": 10**15,
    "pb": 2**50,
    "pi": 2**50,
    "pib": 2**50,
    "e": 10**18,
    "eb": 2**60,
    "ei": 2**60,
    "eib": 2**60,
}

# nats-server keeps `$2a$...` (a bcrypt hash written without quotes) as a literal string.
BCRYPT_PREFIX = "2a$"
# The key nats-server wraps an environment value in to parse it as config text.
ENV_KEY = "pk"


def parse_file(path: str | os.PathLike[str]) -> ConfigMap:
    """Parse a nats.conf file. Errors are `ConfigError`s naming file, line and column."""
    name = os.fspath(path)
    try:
        text = Path(name).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config file: {_reason(exc)}", Position(name)) from exc
    return parse_text(text, name)


def parse_text(text: str, filename: str = "<string>") -> ConfigMap:
    """Parse config text; includes are resolved relative to `filename`'s directory."""
    return _Parser(text, filename, _Shared(), (os.path.abspath(filename),)).parse()


def parse_size_literal(text: str) -> int:
    """`1k` -> 1000, `1KB` -> 1024, `-1` -> -1. Raises ValueError on anything else."""
    digits_end = 0
    for char in text:
        if not (char.isdigit() or (char == "-" and digits_end == 0)):
            break
        digits_end += 1
    digits, suffix = text[:digits_end], text[digits_end:].strip().lower()
    if not digits.lstrip("-"):
        raise ValueError(f"expected an integer, but got {text!r}")
    multiplier = SIZE_MULTIPLIERS.get(suffix)
    if multiplier is None:
        raise ValueError(f"invalid size suffix in {text!r}")
    value = int(digits) * multiplier
    if not INT64_MIN <= value <= INT64_MAX:
        raise ValueError(f"integer {text!r} is out of the range")
    return value


class _Shared:
    """State shared by a file, its includes and environment values: the variable chain."""

    def __init__(self) -> None:
        # Environment variables being expanded right now: `A=$B`, `B=$A` must not loop.
        self.env_stack: list[str] = []


class _Parser:
    def __init__(
        self, text: str, filename: str, shared: _Shared, include_chain: tuple[str, ...]
    ) -> None:
        self.file = filename
        self.tokens = lex(text, filename)
        self.index = 0
        self.shared = shared
        self.include_chain = include_chain

    def parse(self) -> ConfigMap:
        root: ConfigMap = {}
        self._parse_entries(root, [root])
        return root

    def _next(self) -> Token | None:
        if self.index >= len(self.tokens):
            return None
        token = self.tokens[self.index]
        self.index += 1
        return token

    def _parse_entries(self, target: ConfigMap, scopes: list[ConfigMap]) -> None:
        """Fill `target` until its MAP_END (or the end of the file for the top level)."""
        while True:
            token = self._next()
            if token is None or token.kind is Kind.MAP_END:
                return
            if token.kind is Kind.INCLUDE:
                target.update(self._include(token))
                continue
            value_token = self._next()
            if value_token is None:  # the lexer refuses this; keep the parser total anyway
                raise ConfigError(f"key {token.text!r} has no value", token.pos)
            node = self._parse_value(value_token, scopes)
            node.key_pos = token.pos
            # Like nats-server, a repeated key silently replaces the earlier value.
            target[token.text] = node

    def _parse_value(self, token: Token, scopes: list[ConfigMap]) -> Node:
        match token.kind:
            case Kind.STRING:
                return Node(token.text, token.pos, raw=token.text)
            case Kind.BOOL:
                return Node(token.text.lower() in ("true", "yes", "on"), token.pos, raw=token.text)
            case Kind.INTEGER:
                return Node(self._integer(token), token.pos, raw=token.text)
            case Kind.FLOAT:
                return Node(float(token.text), token.pos, raw=token.text)
            case Kind.DATETIME:
                return Node(self._datetime(token), token.pos, raw=token.text)
            case Kind.ARRAY_START:
                return self._parse_array(token, scopes)
            case Kind.MAP_START:
                block: ConfigMap = {}
                # Variables defined in this block are visible to later values inside it.
                self._parse_entries(block, [*scopes, block])
                return Node(block, token.pos)
            case Kind.VARIABLE:
                return self._resolve(token, scopes)
        raise ConfigError(f"unexpected {token.kind.value} {token.text!r}", token.pos)

    def _parse_array(self, start: Token, scopes: list[ConfigMap]) -> Node:
        items: list[Node] = []
        while True:
            token = self._next()
            if token is None:
                raise ConfigError("unexpected end of file inside an array", start.pos)
            if token.kind is Kind.ARRAY_END:
                return Node(items, start.pos)
            items.append(self._parse_value(token, scopes))

    def _integer(self, token: Token) -> int:
        try:
            return parse_size_literal(token.text)
        except ValueError as exc:
            raise ConfigError(str(exc), token.pos) from exc

    def _datetime(self, token: Token) -> datetime:
        try:
            moment = datetime.strptime(token.text, "%Y-%m-%dT%H:%M:%SZ")
        except ValueError as exc:
            raise ConfigError(f"invalid Zulu date {token.text!r}", token.pos) from exc
        return moment.replace(tzinfo=UTC)

    # --- variables -----------------------------------------------------------------------------

    def _resolve(self, token: Token, scopes: list[ConfigMap]) -> Node:
        name = token.text
        if name.startswith(BCRYPT_PREFIX):
            return Node("$" + name, token.pos, raw="$" + name)
        # Innermost block first; only keys already seen are defined (no forward references).
        for scope in reversed(scopes):
            found = scope.get(name)
            if found is not None:
                found.used_as_variable = True
                return Node(found.value, token.pos, raw=found.raw)
        return self._resolve_env(token)

    def _resolve_env(self, token: Token) -> Node:
        name = token.text
        if name in self.shared.env_stack:
            chain = " -> ".join(f"${n}" for n in [*self.shared.env_stack, name])
            raise ConfigError(f"variable reference cycle: {chain}", token.pos)
        text = os.environ.get(name)
        if text is None:
            raise ConfigError(
                f"variable reference for '{name}' can not be found: no key '{name}' is defined "
                "before it in this or an enclosing block and no such environment variable is set",
                token.pos,
            )
        self.shared.env_stack.append(name)
        try:
            # As nats-server does: parse "pk=<value>" so the value gets config typing.
            env_parser = _Parser(f"{ENV_KEY}={text}", f"${name}", self.shared, self.include_chain)
            value = env_parser.parse().get(ENV_KEY)
        except ConfigError as exc:
            # A nested reference failed (e.g. a cycle): report that, at this reference.
            problem = exc.problem
            if not problem.startswith("variable reference"):
                problem = f"variable reference for '{name}' could not be parsed: {problem}"
            raise ConfigError(problem, token.pos) from exc
        finally:
            self.shared.env_stack.pop()
        if value is None:
            return Node("", token.pos)
        relocate(value, token.pos)
        return value

    # --- include -------------------------------------------------------------------------------

    def _include(self, token: Token) -> ConfigMap:
        path = os.path.join(os.path.dirname(self.file), token.text)
        absolute = os.path.abspath(path)
        if absolute in self.include_chain:
            chain = " -> ".join([*self.include_chain, absolute])
            raise ConfigError(f"include cycle: {chain}", token.pos, "include")
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, ValueError) as exc:  # ValueError: a NUL in the name, or not UTF-8
            raise ConfigError(
                f"error parsing include file '{token.text}': {_reason(exc)}", token.pos, "include"
            ) from exc
        # An included file has its own variable scope, as in nats-server.
        included = _Parser(text, path, self.shared, (*self.include_chain, absolute))
        return included.parse()


def relocate(node: Node, pos: Position) -> None:
    """Values read from an environment variable are reported at the `$NAME` that pulled them."""
    node.pos = pos
    node.key_pos = None
    if isinstance(node.value, dict):
        for child in node.value.values():
            relocate(child, pos)
    elif isinstance(node.value, list):
        for child in node.value:
            relocate(child, pos)


def _reason(exc: Exception) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.strerror}: {exc.filename}"
    return str(exc)
