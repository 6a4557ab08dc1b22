"""Subject syntax: tokens separated by `.`, `*` matches one token, `>` one or more trailing ones.

Subjects travel as `bytes` on the hot path (that is what the parser hands us), so every helper here
accepts bytes. Validation follows nats-server's sublist rules: no empty tokens, no whitespace, and a
`>` only as the last token.
"""

from __future__ import annotations

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


def is_literal(subject: bytes) -> bool:
    """True when no token is a wildcard (the subject can only match itself)."""
    if b"*" not in subject and b">" not in subject:
        return True
    return all(token not in (PWC, FWC) for token in subject.split(b"."))


def subject_matches(pattern: bytes, subject: bytes) -> bool:
    """Whether a literal `subject` is matched by `pattern` (which may hold wildcards)."""
    ptoks = pattern.split(b".")
    stoks = subject.split(b".")
    for i, ptok in enumerate(ptoks):
        if ptok == FWC:
            return len(stoks) > i
        if i >= len(stoks):
            return False
        if ptok != PWC and ptok != stoks[i]:
            return False
    return len(ptoks) == len(stoks)


def is_subset(subject: bytes, pattern: bytes) -> bool:
    """Whether every subject `subject` can match is also matched by `pattern`."""
    stoks = subject.split(b".")
    ptoks = pattern.split(b".")
    for i, ptok in enumerate(ptoks):
        if ptok == FWC:
            return len(stoks) > i
        if i >= len(stoks):
            return False
        if ptok == PWC:
            if stoks[i] == FWC:
                return False
        elif ptok != stoks[i]:
            return False
    return len(stoks) == len(ptoks)


def subjects_collide(a: bytes, b: bytes) -> bool:
    """Whether some literal subject could be matched by both patterns."""
    atoks = a.split(b".")
    btoks = b.split(b".")
    for i in range(max(len(atoks), len(btoks))):
        if i >= len(atoks) or i >= len(btoks):
            return False
        x, y = atoks[i], btoks[i]
        if x == FWC or y == FWC:
            return True
        if x != y and x != PWC and y != PWC:
            return False
    return len(atoks) == len(btoks)


def _has_whitespace(subject: bytes) -> bool:
    return any(c in _WHITESPACE for c in subject)
