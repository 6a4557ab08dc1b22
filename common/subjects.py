"""Subject syntax: tokens separated by `.`, `*` matches one token, `>` one or more trailing ones.

Subjects travel as `bytes` on the broker's hot path (that is what the parser hands us) and as `str`
in stores and configs, so the matching helpers accept either (both arguments of one kind).
Validation (bytes) follows nats-server's sublist rules: no empty tokens, no whitespace, and a
`>` only as the last token.
"""

from __future__ import annotations

from typing import AnyStr

PWC = b"*"
FWC = b">"
_WHITESPACE = frozenset(b" \t\r\n\f")


def is_valid_subject(subject: bytes) -> bool:
    """A subject usable in SUB: wildcards allowed, `>` only last, no empty tokens."""
    if not subject or _has_whitespace(subject):
        return False
    tokens = subject.split(b".")
    last = len(tokens) - 1
    for i, token in enumerate(tokens):
        if not token:
            return False
        if len(token) > 1:
            continue
        if token == FWC and i != last:
            return False
    return True


def is_valid_literal_subject(subject: bytes) -> bool:
    """A subject usable in PUB when pedantic: valid and free of wildcard tokens."""
    if not is_valid_subject(subject):
        return False
    return all(token not in (PWC, FWC) for token in subject.split(b"."))


def subject_text(subject: bytes) -> str:
    """A subject off the wire as text. The protocol promises no encoding, and nats-server routes
    and stores any bytes: invalid UTF-8 becomes U+FFFD here, which is how nats-server's JSON
    shows such a subject. Decode subjects with this, never with a bare `.decode()`."""
    return subject.decode("utf-8", "replace")


def _syntax(subject: str | bytes) -> tuple[str, str, str] | tuple[bytes, bytes, bytes]:
    """(separator, one-token wildcard, tail wildcard) in the subject's own type."""
    return (".", "*", ">") if isinstance(subject, str) else (b".", PWC, FWC)


def is_literal(subject: AnyStr) -> bool:
    """True when no token is a wildcard (the subject can only match itself)."""
    sep, pwc, fwc = _syntax(subject)
    if pwc not in subject and fwc not in subject:  # type: ignore[operator]
        return True
    return all(token not in (pwc, fwc) for token in subject.split(sep))  # type: ignore[arg-type]


def subject_matches(pattern: AnyStr, subject: AnyStr) -> bool:
    """Whether a literal `subject` is matched by `pattern` (which may hold wildcards)."""
    sep, pwc, fwc = _syntax(pattern)
    ptoks = pattern.split(sep)  # type: ignore[arg-type]
    stoks = subject.split(sep)  # type: ignore[arg-type]
    for i, ptok in enumerate(ptoks):
        if ptok == fwc:
            return len(stoks) > i
        if i >= len(stoks):
            return False
        if ptok != pwc and ptok != stoks[i]:
            return False
    return len(ptoks) == len(stoks)


def is_subset(subject: AnyStr, pattern: AnyStr) -> bool:
    """Whether every subject `subject` can match is also matched by `pattern`."""
    sep, pwc, fwc = _syntax(subject)
    stoks = subject.split(sep)  # type: ignore[arg-type]
    ptoks = pattern.split(sep)  # type: ignore[arg-type]
    for i, ptok in enumerate(ptoks):
        if ptok == fwc:
            return len(stoks) > i
        if i >= len(stoks):
            return False
        if ptok == pwc:
            if stoks[i] == fwc:
                return False
        elif ptok != stoks[i]:
            return False
    return len(stoks) == len(ptoks)


def subjects_collide(a: AnyStr, b: AnyStr) -> bool:
    """Whether some literal subject could be matched by both patterns."""
    sep, pwc, fwc = _syntax(a)
    atoks = a.split(sep)  # type: ignore[arg-type]
    btoks = b.split(sep)  # type: ignore[arg-type]
    for i in range(max(len(atoks), len(btoks))):
        if i >= len(atoks) or i >= len(btoks):
            return False
        x, y = atoks[i], btoks[i]
        if x == fwc or y == fwc:
            return True
        if x != y and x != pwc and y != pwc:
            return False
    return len(atoks) == len(btoks)


def _has_whitespace(subject: bytes) -> bool:
    return any(c in _WHITESPACE for c in subject)
