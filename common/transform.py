"""Subject transforms: nats-server's subject mapping from a source pattern to a destination.

A transform maps a literal subject matching `src` (which may hold `*` and a final `>`) to
`dest`, whose tokens are literal, a reference to one of the source's `*` wildcards (`$1` or
`{{wildcard(1)}}`, numbered from 1 in order), a mapping function, or a final `>` (only when the
source ends with `>` too: it stands for the same trailing tokens). The functions (names are
matched with only their first letter case-insensitive, as nats-server does):

| function | gives |
| --- | --- |
| `{{partition(n, i, j...)}}` | FNV-1a 32 of wildcards i, j... (concatenated) modulo n; |
| | without indexes, of the whole subject |
| `{{split(i, delim)}}` | wildcard i split on `delim` into tokens (empty parts dropped) |
| `{{splitfromleft(i, pos)}}` | wildcard i cut in two tokens after `pos` bytes |
| `{{splitfromright(i, pos)}}` | wildcard i cut in two tokens `pos` bytes before its end |
| `{{slicefromleft(i, size)}}` | wildcard i in tokens of `size` bytes from the left |
| `{{slicefromright(i, size)}}` | wildcard i in tokens of `size` bytes from the right |
| `{{left(i, size)}}`, `{{right(i, size)}}` | the first / last `size` bytes of wildcard i |
| `{{random(n)}}` | a random number below n |

Lengths and the hash count UTF-8 bytes, as nats-server does. A source without wildcards allows
only literal tokens, `partition` (of the whole subject) and `random` in the destination.

`SubjectTransform(src, dest)` validates (raising `TransformError` with nats-server's text) and
`apply(subject)` maps, or gives None when the subject does not match `src` or is not a valid
literal subject. `new_transform` is nats-server's constructor (an empty dest: no transform) and
`validate_mapping` its `ValidateMapping`, the stricter check a stream config gets.
"""

from __future__ import annotations

import random
import re

from common.subjects import subject_matches

SEP = "."
PWC = "*"
FWC = ">"

# Errors, in nats-server's words (server/errors.go).
BAD_SUBJECT = "invalid subject"
_INVALID = "invalid mapping destination"
INVALID_TRANSFORM = f"{_INVALID}: invalid transform"
UNKNOWN_FUNCTION = f"{_INVALID}: unknown function"
INDEX_OUT_OF_RANGE = f"{_INVALID}: wildcard index out of range"
NOT_ENOUGH_ARGS = f"{_INVALID}: not enough arguments passed to the function"
INVALID_ARG = f"{_INVALID}: function argument is invalid or in the wrong format"
TOO_MANY_ARGS = f"{_INVALID}: too many arguments passed to the function"

# What a destination token does.
LITERAL = "literal"
WILDCARD = "wildcard"
PARTITION = "partition"
SPLIT_FROM_LEFT = "splitfromleft"
SPLIT_FROM_RIGHT = "splitfromright"
SLICE_FROM_LEFT = "slicefromleft"
SLICE_FROM_RIGHT = "slicefromright"
SPLIT = "split"
LEFT = "left"
RIGHT = "right"
RANDOM = "random"

_WS = "[\t\n\f\r ]"  # Go's \s
_COMMA = re.compile(",[\t\n\f\r ]*")


def _function(name: str) -> re.Pattern[str]:
    """`{{ name(args) }}` with only the first letter of each word case-insensitive."""
    pattern = "".join(f"[{w[0].lower()}{w[0].upper()}]{w[1:]}" for w in name.split("_"))
    return re.compile(r"\{\{" + _WS + "*" + pattern + _WS + r"*\((.*)\)" + _WS + r"*\}\}")


# In the order nats-server tries them (the first that matches decides).
_FUNCTIONS: list[tuple[str, re.Pattern[str]]] = [
    (WILDCARD, _function("wildcard")),
    (PARTITION, _function("partition")),
    (SPLIT_FROM_LEFT, _function("split_from_left")),
    (SPLIT_FROM_RIGHT, _function("split_from_right")),
    (SLICE_FROM_LEFT, _function("slice_from_left")),
    (SLICE_FROM_RIGHT, _function("slice_from_right")),
    (RIGHT, _function("right")),
    (LEFT, _function("left")),
    (SPLIT, _function("split")),
    (RANDOM, _function("random")),
]
_INT = re.compile(r"[+-]?[0-9]+")
_INT32_MAX = (1 << 31) - 1
_INT64_MAX = (1 << 63) - 1


class TransformError(ValueError):
    """An invalid transform; `str()` is nats-server's text."""


def _error(base: str, token: str) -> TransformError:
    """nats-server's mappingDestinationErr: the error, and the token it is about."""
    return TransformError(f"{base} in {token}" if token else base)


def _atoi(text: str, limit: int = _INT64_MAX) -> int | None:
    """Go's strconv.Atoi / ParseInt(text, 10, bits): a signed decimal within the bits' range."""
    if not _INT.fullmatch(text):
        return None
    value = int(text)
    return value if -limit - 1 <= value <= limit else None


def _args(pattern: re.Pattern[str], token: str) -> list[str] | None:
    m = pattern.search(token)
    return _COMMA.split(m.group(1)) if m else None


def _is_function_token(token: str) -> bool:
    return len(token) > 4 and token.startswith("{{") and token.endswith("}}")


class _Token:
    """One destination token: what it does, the source token indexes and the int / str
    arguments of its function."""

    __slots__ = ("delim", "indexes", "kind", "number", "text")

    def __init__(self, kind: str, text: str, indexes: list[int] | None = None,
                 number: int = -1, delim: str = "") -> None:
        self.kind = kind
        self.text = text
        self.indexes = indexes or []
        self.number = number
        self.delim = delim


def _parse_token(token: str) -> tuple[str, list[int], int, str]:
    """(kind, wildcard numbers, int argument, str argument) of a destination token
    (nats-server's indexPlaceHolders)."""
    if len(token) <= 1:
        return LITERAL, [], -1, ""
    if token[0] == "$":  # the old $1 form; `$` followed by anything else is literal
        n = _atoi(token[1:])
        return (WILDCARD, [n], -1, "") if n is not None else (LITERAL, [], -1, "")
    if not _is_function_token(token):
        return LITERAL, [], -1, ""
    for kind, pattern in _FUNCTIONS:
        args = _args(pattern, token)
        if args is None:
            continue
        if kind == WILDCARD:
            if args == [""]:
                raise _error(NOT_ENOUGH_ARGS, token)
            if len(args) > 1:
                raise _error(TOO_MANY_ARGS, token)
            n = _atoi(args[0].strip(" "))
            if n is None:
                raise _error(INVALID_ARG, token)
            return WILDCARD, [n], -1, ""
        if kind == PARTITION:
            buckets = _atoi(args[0].strip(" "))
            if buckets is None or buckets > _INT32_MAX:
                raise _error(INVALID_ARG, token)
            indexes = []
            for arg in args[1:]:
                n = _atoi(arg.strip(" "))
                if n is None:
                    raise _error(INVALID_ARG, token)
                indexes.append(n)
            return PARTITION, indexes, _int32(buckets), ""
        if kind == SPLIT:
            if len(args) < 2:
                raise _error(NOT_ENOUGH_ARGS, token)
            if len(args) > 2:
                raise _error(TOO_MANY_ARGS, token)
            n = _atoi(args[0].strip(" "))
            if n is None or " " in args[1] or SEP in args[1]:
                raise _error(INVALID_ARG, token)
            return SPLIT, [n], -1, args[1]
        if kind == RANDOM:
            if len(args) != 1:
                raise _error(NOT_ENOUGH_ARGS, token)
            n = _atoi(args[0].strip(" "))
            if n is None or n > _INT32_MAX:
                raise _error(INVALID_ARG, token)
            return RANDOM, [], _int32(n), ""
        # The functions of (wildcard number, int).
        if len(args) < 2:
            raise _error(NOT_ENOUGH_ARGS, token)
        if len(args) > 2:
            raise _error(TOO_MANY_ARGS, token)
        n = _atoi(args[0].strip(" "))
        number = _atoi(args[1].strip(" "), _INT32_MAX)
        if n is None or number is None:
            raise _error(INVALID_ARG, token)
        return kind, [n], number, ""
    raise _error(UNKNOWN_FUNCTION, token)


def _int32(value: int) -> int:
    """Go's int32(value) (wraps)."""
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value > _INT32_MAX else value


def _subject_info(subject: str) -> tuple[bool, list[str], int, bool]:
    """(valid, tokens, number of `*`, ends with `>`): nats-server's subjectInfo, which does
    not look at whitespace."""
    if not subject:
        return False, [], 0, False
    tokens = subject.split(SEP)
    pwcs = 0
    fwc = False
    for token in tokens:
        if not token or fwc:
            return False, [], 0, False
        if token == FWC:
            fwc = True
        elif token == PWC:
            pwcs += 1
    return True, tokens, pwcs, fwc


class SubjectTransform:
    """A validated transform from `src` (`""` is `>`) to `dest` (not empty: see
    `new_transform`). Raises TransformError."""

    __slots__ = ("_dtoks", "_identity", "_stoks", "dest", "src")

    def __init__(self, src: str, dest: str) -> None:
        if not src:
            src = FWC
        self.src = src
        self.dest = dest
        valid_src, stoks, pwcs, src_fwc = _subject_info(src)
        valid_dest, dtoks, dest_pwcs, dest_fwc = _subject_info(dest)
        if not valid_src or not valid_dest or dest_pwcs or src_fwc != dest_fwc:
            raise TransformError(BAD_SUBJECT)
        self._stoks = stoks
        self._identity = src == FWC and dest == FWC
        # The n-th `*` of the source (from 1) is source token wildcard_at[n].
        wildcard_at: dict[int, int] = {}
        for i, token in enumerate(stoks):
            if token == PWC:
                wildcard_at[len(wildcard_at) + 1] = i
        self._dtoks: list[_Token] = []
        for token in dtoks:
            kind, numbers, number, delim = _parse_token(token)
            if kind == LITERAL:
                self._dtoks.append(_Token(LITERAL, token))
            elif kind == RANDOM:
                self._dtoks.append(_Token(RANDOM, token, number=number))
            elif pwcs or src_fwc:
                indexes = []
                for n in numbers:
                    if n > pwcs:
                        raise _error(INDEX_OUT_OF_RANGE, f"{token}: [{n}]")
                    # nats-server looks the number up in a map: 0 or less reads token 0.
                    indexes.append(wildcard_at.get(n, 0))
                self._dtoks.append(_Token(kind, token, indexes, number, delim))
            elif kind == PARTITION:  # no wildcard to name: of the whole subject
                self._dtoks.append(_Token(PARTITION, token, number=number))
            else:
                raise _error(INDEX_OUT_OF_RANGE, token)

    def __repr__(self) -> str:
        return f"SubjectTransform({self.src!r}, {self.dest!r})"

    def apply(self, subject: str) -> str | None:
        """The transformed subject; None when `subject` is not a valid literal subject or does
        not match `src`."""
        if self._identity:
            return subject
        tokens = subject.split(SEP)
        if any(not t or t in (PWC, FWC) for t in tokens):
            return None
        if self.src != FWC and not subject_matches(self.src, subject):
            return None
        return self._transform(tokens)

    def _transform(self, tokens: list[str]) -> str:
        out: list[str] = []
        for token in self._dtoks:
            kind = token.kind
            if kind == LITERAL:
                if token.text == FWC:
                    # The source's `>` tokens (the match guarantees there is at least one).
                    out.append(SEP.join(tokens[len(self._stoks) - 1:]))
                    break
                out.append(token.text)
            elif kind == WILDCARD:
                i = token.indexes[0]
                out.append(tokens[i] if i < len(tokens) else "")
            elif kind == PARTITION:
                if token.indexes:
                    key = "".join(tokens[i] for i in token.indexes).encode()
                else:
                    key = SEP.join(tokens).encode()
                out.append(partition(key, token.number))
            elif kind == RANDOM:
                n = token.number
                out.append(str(random.randrange(1 << 31) % abs(n)) if n else "0")
            else:
                out.append(_apply_function(kind, tokens[token.indexes[0]], token))
        return SEP.join(out)


def _apply_function(kind: str, source: str, token: _Token) -> str:
    """The token functions that cut one source token (lengths in UTF-8 bytes)."""
    if kind == SPLIT:
        parts = source.split(token.delim) if token.delim else list(source)
        out = []
        for j, part in enumerate(parts):
            out.append(part)
            if j < len(parts) - 1 and parts[j + 1] and not (j == 0 and not part):
                out.append(SEP)
        return "".join(out)
    data = source.encode("utf-8", "surrogatepass")
    size = len(data)
    n = token.number
    if not 0 < n < size:  # too short to cut: the token as it is
        return source
    if kind == SPLIT_FROM_LEFT:
        pieces = [data[:n], data[n:]]
    elif kind == SPLIT_FROM_RIGHT:
        pieces = [data[:size - n], data[size - n:]]
    elif kind == SLICE_FROM_LEFT:
        pieces = [data[i:i + n] for i in range(0, size, n)]
    elif kind == SLICE_FROM_RIGHT:
        rest = size % n
        pieces = ([data[:rest]] if rest else []) + [data[i:i + n] for i in range(rest, size, n)]
    elif kind == LEFT:
        pieces = [data[:n]]
    else:  # RIGHT
        pieces = [data[size - n:]]
    return b".".join(pieces).decode("utf-8", "replace")


def partition(key: bytes, buckets: int) -> str:
    """nats-server's hash partition: FNV-1a 32 of `key` modulo `buckets` (as Go's uint32)."""
    n = buckets & 0xFFFFFFFF
    if n == 0:
        return "0"
    h = 0x811C9DC5
    for byte in key:
        h = ((h ^ byte) * 0x01000193) & 0xFFFFFFFF
    return str(h % n)


def new_transform(src: str, dest: str) -> SubjectTransform | None:
    """nats-server's NewSubjectTransform: None for an empty `dest` (nothing to transform)."""
    if not dest:
        return None
    return SubjectTransform(src, dest)


_KNOWN_FUNCTIONS = [pattern for _, pattern in _FUNCTIONS]


def validate_mapping(src: str, dest: str) -> None:
    """nats-server's ValidateMapping (the check of a stream's or a source's transform): the
    destination's tokens first, then the transform itself. Raises TransformError."""
    if not dest:
        return
    after_fwc = False
    for token in dest.split(SEP):
        if not token or after_fwc:
            raise _error(INVALID_TRANSFORM, token)
        if _is_function_token(token):
            if not any(p.search(token) for p in _KNOWN_FUNCTIONS):
                raise _error(UNKNOWN_FUNCTION, token)
            continue
        if token == FWC:
            after_fwc = True
        elif any(c in token for c in "\t\n\f\r "):
            raise TransformError(INVALID_TRANSFORM)
    SubjectTransform(src, dest)
