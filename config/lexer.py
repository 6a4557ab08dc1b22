"""Tokenizer for the nats-server configuration syntax (the format of nats-server's conf/lex.go).

The syntax is context sensitive (`a-b` is a string, `2006-01-02T15:04:05Z` a date, `1.2.3.4:5` a
string, `1.5` a float, `$X` a variable, `include x` a directive), so the lexer is a small
recursive-descent scanner over the whole text that produces a flat token list for the parser.

Deliberate differences from nats-server (all cases nats-server mishandles):
  * a number directly before `]` is a number (nats-server makes the last element of `[1, 2]`
    the string "2");
  * a key without a value, a stray `}` and a lone `/` are errors (nats-server drops or skips
    them silently in some positions);
  * a `'` inside a bare string is an ordinary character.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from enum import Enum

from config.errors import ConfigError
from config.nodes import Position


class Kind(Enum):
    KEY = "key"
    STRING = "string"
    BOOL = "bool"
    INTEGER = "integer"  # text keeps the size suffix: the parser multiplies it out
    FLOAT = "float"
    DATETIME = "datetime"
    VARIABLE = "variable"  # text is the name, without the `$`
    INCLUDE = "include"  # text is the path as written
    ARRAY_START = "["
    ARRAY_END = "]"
    MAP_START = "{"
    MAP_END = "}"


@dataclass(frozen=True)
class Token:
    kind: Kind
    text: str
    pos: Position


BOOL_WORDS = frozenset({"true", "false", "yes", "no", "on", "off"})
SIZE_SUFFIX_LETTERS = frozenset("kKmMgGtTpPeE")
EOF = ""
NEWLINES = "\n\r"
BLANKS = " \t"
# A bare string ends at any of these (or a newline / end of input).
BARE_STRING_END = frozenset(" \t;,]}")
# A number ends at any of these (or a newline / end of input); anything else turns it into a
# string: `10s` is the string "10s", `10` the integer 10.
NUMBER_END = frozenset(" \t;,]}")
ESCAPES = {"t": "\t", "n": "\n", "r": "\r", '"': '"', "\\": "\\"}
DATETIME_TAIL = "00-00T00:00:00Z"  # after "YYYY-"; '0' stands for any digit


def lex(text: str, filename: str) -> list[Token]:
    """Tokenize a whole configuration file. Raises `ConfigError` naming file:line:col."""
    return Lexer(text, filename).run()


class Lexer:
    """One pass over `text`. Methods named `_lex_*` consume one construct and emit its tokens."""

    def __init__(self, text: str, filename: str) -> None:
        self.text = text.removeprefix("\ufeff")
        self.file = filename
        self.i = 0
        self.tokens: list[Token] = []
        self._line_starts = [0] + [n + 1 for n, c in enumerate(self.text) if c == "\n"]

    def run(self) -> list[Token]:
        self._skip_blanks_and_comments(newlines=True)
        if self._peek() == "{":
            # JSON-like files wrap everything in one pair of braces; the keys stay top-level.
            self.i += 1
            self._lex_entries(closer="}", value_on_next_line=False)
            self._skip_blanks_and_comments(newlines=True)
            if self._peek() != EOF:
                raise self._error(f"unexpected {self._peek()!r} after the closing '}}'")
            return self.tokens
        self._lex_entries(closer=None, value_on_next_line=False)
        return self.tokens

    # --- positions, errors, low-level helpers -------------------------------------------------

    def _position(self, index: int) -> Position:
        line = bisect.bisect_right(self._line_starts, index)
        return Position(self.file, line, index - self._line_starts[line - 1] + 1)

    def _error(self, problem: str, index: int | None = None) -> ConfigError:
        return ConfigError(problem, self._position(self.i if index is None else index))

    def _emit(self, kind: Kind, text: str, start: int) -> None:
        self.tokens.append(Token(kind, text, self._position(start)))

    def _peek(self, offset: int = 0) -> str:
        index = self.i + offset
        return self.text[index] if index < len(self.text) else EOF

    def _at_comment(self) -> bool:
        return self._peek() == "#" or (self._peek() == "/" and self._peek(1) == "/")

    def _skip_comment(self) -> None:
        """Skip to the end of the line, leaving the newline: it still terminates a value."""
        while self._peek() not in (EOF, "\n", "\r"):
            self.i += 1

    def _skip_blanks_and_comments(self, newlines: bool) -> None:
        while True:
            char = self._peek()
            if char == EOF:
                return
            if char in BLANKS or (newlines and char.isspace()):
                self.i += 1
            elif self._at_comment():
                self._skip_comment()
            else:
                return

    def _skip_blanks(self, newlines: bool) -> None:
        while True:
            char = self._peek()
            if char == EOF or not (char in BLANKS or (newlines and char.isspace())):
                return
            self.i += 1

    # --- keys and entries ----------------------------------------------------------------------

    def _lex_entries(self, closer: str | None, value_on_next_line: bool) -> None:
        """Entries of the top level (closer None) or of a `{ }` block, up to and past `closer`."""
        while True:
            self._skip_blanks_and_comments(newlines=True)
            char = self._peek()
            if char == EOF:
                if closer:
                    raise self._error("unexpected end of file inside a '{ }' block")
                return
            if char == closer:
                self.i += 1
                return
            if char in "}]":
                raise self._error(f"unexpected {char!r}: expected a key")
            self._lex_entry(closer, value_on_next_line)

    def _lex_entry(self, closer: str | None, value_on_next_line: bool) -> None:
        start = self.i
        key, is_include = self._lex_key()
        if is_include:
            self._lex_include()
        else:
            self._emit(Kind.KEY, key, start)
            self._lex_key_end(key, closer, value_on_next_line)
            self._lex_value()
        self._lex_value_end(closer)

    def _lex_key(self) -> tuple[str, bool]:
        """A quoted or bare key. Returns (key, is_include_directive)."""
        char = self._peek()
        if char in "=:":
            raise self._error(f"unexpected key separator {char!r}")
        if char in "\"'":
            end = self.text.find(char, self.i + 1)
            if end < 0:
                raise self._error("unexpected end of file inside a quoted key")
            key = self.text[self.i + 1 : end]
            self.i = end + 1
            return key, False
        start = self.i
        while self._peek() != EOF and not self._peek().isspace() and self._peek() not in "=:":
            self.i += 1
        key = self.text[start : self.i]
        # `include` is a keyword only when followed by white space, as in nats-server.
        is_include = key.lower() == "include" and self._peek().isspace()
        return key, is_include

    def _lex_key_end(self, key: str, closer: str | None, value_on_next_line: bool) -> None:
        """Skip the separator (`=`, `:` or just white space, which may include newlines)."""
        self._skip_blanks(newlines=True)
        if self._peek() in ("=", ":"):
            self.i += 1
            # After an explicit separator the value must follow on the same line, except
            # inside `{ }` blocks (nats-server's rule).
            self._skip_blanks(newlines=value_on_next_line)
        if self._peek() == EOF or (closer and self._peek() == closer):
            raise self._error(f"key {key!r} has no value")

    def _lex_value_end(self, closer: str | None) -> None:
        """After a value: blanks and a comment, then a newline, `;`, `,`, the closer or EOF."""
        self._skip_blanks_and_comments(newlines=False)
        char = self._peek()
        if char == EOF or (closer and char == closer):
            return
        if char in "\n\r;,":
            self.i += 1
            return
        where = "a top-level value" if closer is None else "a value inside '{ }'"
        raise self._error(
            f"expected {where} to end with a new line, ',', ';' or comment, but got {char!r}"
        )

    def _lex_include(self) -> None:
        self._skip_blanks(newlines=False)
        start = self.i
        char = self._peek()
        if char in ("'", '"'):
            end = self.text.find(char, self.i + 1)
            if end < 0:
                raise self._error("unexpected end of file inside a quoted include path")
            self._emit(Kind.INCLUDE, self.text[self.i + 1 : end], start)
            self.i = end + 1
            return
        if char == EOF or char in NEWLINES:
            raise self._error("expected a file name after 'include'")
        if char in "[{(-\\" or char.isdigit():
            raise self._error(f"expected a file name after 'include', found {char!r}")
        while self._peek() != EOF and self._peek() not in " \t\n\r;}":
            self.i += 1
        self._emit(Kind.INCLUDE, self.text[start : self.i], start)

    # --- values ----------------------------------------------------------------------------------

    def _lex_value(self) -> None:
        """One value of any kind; leading blanks were already skipped."""
        char = self._peek()
        if char == EOF:
            raise self._error("unexpected end of file: expected a value")
        if char in NEWLINES:
            raise self._error("expected a value but found a new line")
        if char == "[":
            self._lex_array()
        elif char == "{":
            self._emit(Kind.MAP_START, "{", self.i)
            self.i += 1
            self._lex_entries(closer="}", value_on_next_line=True)
            self._emit(Kind.MAP_END, "}", self.i - 1)
        elif char == "'":
            self._lex_raw_string()
        elif char == '"':
            self._lex_quoted_string()
        elif char == "-":
            self._lex_negative_number()
        elif char == "(":
            self._lex_block_string()
        elif char.isdigit():
            self._lex_number(self.i)
        elif char == ".":
            raise self._error("floats must start with a digit")
        else:
            self._lex_bare(self.i)

    def _lex_array(self) -> None:
        self._emit(Kind.ARRAY_START, "[", self.i)
        self.i += 1
        while True:
            self._skip_blanks_and_comments(newlines=True)
            char = self._peek()
            if char == EOF:
                raise self._error("unexpected end of file inside an array")
            if char == "]":
                self._emit(Kind.ARRAY_END, "]", self.i)
                self.i += 1
                return
            if char == ",":
                raise self._error("unexpected ',' in an array: expected a value")
            self._lex_value()
            self._skip_blanks_and_comments(newlines=False)
            char = self._peek()
            if char in (",", "\n", "\r"):
                self.i += 1
            elif char != "]":
                shown = "end of file" if char == EOF else repr(char)
                raise self._error(f"expected ',' or ']' after an array value, but got {shown}")

    def _lex_raw_string(self) -> None:
        """Single quoted: no escapes, no variables."""
        end = self.text.find("'", self.i + 1)
        if end < 0:
            raise self._error("unexpected end of file inside a quoted string")
        self._emit(Kind.STRING, self.text[self.i + 1 : end], self.i)
        self.i = end + 1

    def _lex_quoted_string(self) -> None:
        """Double quoted: escapes \\t \\n \\r \\" \\\\ \\xHH, no variables."""
        start = self.i
        self.i += 1
        parts: list[str] = []
        while True:
            char = self._peek()
            if char == EOF:
                raise self._error("unexpected end of file inside a quoted string", start)
            self.i += 1
            if char == '"':
                break
            parts.append(self._lex_escape() if char == "\\" else char)
        self._emit(Kind.STRING, "".join(parts), start)

    def _lex_escape(self) -> str:
        """The character after a backslash (already consumed)."""
        char = self._peek()
        if char in ESCAPES:
            self.i += 1
            return ESCAPES[char]
        if char != "x":
            raise self._error(
                f'invalid escape character {char!r}; only \\xXX, \\t, \\n, \\r, \\" and \\\\ '
                "are allowed"
            )
        digits = self.text[self.i + 1 : self.i + 3]
        if len(digits) != 2 or any(c not in "0123456789abcdefABCDEF" for c in digits):
            raise self._error(f"expected two hexadecimal digits after '\\x', but got {digits!r}")
        self.i += 3
        return chr(int(digits, 16))

    def _lex_block_string(self) -> None:
        """`( ... )` with the `)` alone on its line: raw multi-line text."""
        start = self.i
        index = self.i + 1
        while True:
            close = self.text.find("\n)", index)
            if close < 0:
                raise self._error("unexpected end of file inside a '( )' block", start)
            after = close + 2
            if after >= len(self.text) or self.text[after] == "\n":
                break
            index = close + 1
        self._emit(Kind.STRING, self.text[start + 1 : close + 1], start)
        self.i = close + 2

    def _lex_bare(self, start: int) -> None:
        """An unquoted string from `start`; it may turn out to be a boolean or a `$variable`."""
        self.i = start
        parts: list[str] = []
        escaped = False
        while True:
            char = self._peek()
            if char == EOF or char in NEWLINES or char in BARE_STRING_END:
                break
            self.i += 1
            if char == "\\":
                parts.append(self._lex_escape())
                escaped = True
            else:
                parts.append(char)
        text = "".join(parts)
        if escaped:
            self._emit(Kind.STRING, text, start)
        elif text.lower() in BOOL_WORDS:
            self._emit(Kind.BOOL, text, start)
        elif text.startswith("$"):
            self._emit(Kind.VARIABLE, text[1:], start)
        else:
            self._emit(Kind.STRING, text, start)

    # --- numbers, dates, addresses --------------------------------------------------------------

    def _ends_number(self, index: int) -> bool:
        char = self.text[index] if index < len(self.text) else EOF
        return char == EOF or char in NEWLINES or char in NUMBER_END

    def _digits_from(self, index: int) -> int:
        while index < len(self.text) and self.text[index].isdigit():
            index += 1
        return index

    def _lex_number(self, start: int) -> None:
        """Integer, sized integer (`1k`, `1GB`), float, date, IP address or a string like `10s`."""
        end = self._digits_from(start)
        char = self.text[end] if end < len(self.text) else EOF
        if char == "-":
            if end - start != 4:
                raise self._error("dates must be in full Zulu form (2006-01-02T15:04:05Z)", end)
            self._lex_datetime(start)
            return
        if char == ".":
            self._lex_float(start, end)
            return
        if char in SIZE_SUFFIX_LETTERS:
            self._lex_size_suffix(start, end)
            return
        if self._ends_number(end):
            self._emit(Kind.INTEGER, self.text[start:end], start)
            self.i = end
            return
        self._lex_bare(start)

    def _lex_size_suffix(self, start: int, suffix_start: int) -> None:
        """`1k`, `1kb`, `1KiB`...: letters b/i after the unit letter. `1kx` is a string."""
        end = suffix_start + 1
        while end < len(self.text) and self.text[end] in "bBiI":
            end += 1
        if self._ends_number(end) or (end < len(self.text) and self.text[end].isdigit()):
            self._emit(Kind.INTEGER, self.text[start:end], start)
            self.i = end
            return
        self._lex_bare(start)

    def _lex_float(self, start: int, dot: int) -> None:
        after_dot = dot + 1
        if after_dot >= len(self.text) or not self.text[after_dot].isdigit():
            found = self.text[after_dot] if after_dot < len(self.text) else "end of file"
            raise self._error(f"floats must have a digit after the '.', but got {found!r}", dot)
        end = self._digits_from(after_dot)
        if end < len(self.text) and self.text[end] == ".":
            # A second dot: an address such as 127.0.0.1 or 0.0.0.0:4222, kept as a string.
            while end < len(self.text) and (self.text[end].isdigit() or self.text[end] in ".:-"):
                end += 1
            self._emit(Kind.STRING, self.text[start:end], start)
        else:
            self._emit(Kind.FLOAT, self.text[start:end], start)
        self.i = end

    def _lex_negative_number(self) -> None:
        start = self.i
        first = start + 1
        char = self.text[first] if first < len(self.text) else EOF
        if not char.isdigit():
            if char == ".":
                raise self._error("floats must start with a digit, not '.'", first)
            raise self._error(f"expected a digit after '-', but got {char or 'end of file'!r}")
        end = self._digits_from(first)
        char = self.text[end] if end < len(self.text) else EOF
        if char == ".":
            self._lex_float(start, end)
        elif char in SIZE_SUFFIX_LETTERS:
            self._lex_size_suffix(start, end)
        else:
            self._emit(Kind.INTEGER, self.text[start:end], start)
            self.i = end

    def _lex_datetime(self, start: int) -> None:
        """`2006-01-02T15:04:05Z`: "YYYY" was seen, the rest must match exactly."""
        index = start + 5
        for expected in DATETIME_TAIL:
            char = self.text[index] if index < len(self.text) else EOF
            found = repr(char) if char else "end of file"
            if expected == "0" and not char.isdigit():
                raise self._error(f"expected a digit in the ISO8601 date, found {found}", index)
            if expected != "0" and char != expected:
                problem = f"expected {expected!r} in the ISO8601 date, found {found}"
                raise self._error(problem, index)
            index += 1
        self._emit(Kind.DATETIME, self.text[start:index], start)
        self.i = index
