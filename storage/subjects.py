"""Subject filters for stores: `*` matches one token, `>` one or more trailing tokens. Pure.

Storage may not import the broker, so this is a small str-based twin of `broker.subject`.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache

from storage.store import ALL

Matcher = Callable[[str], bool]


def is_literal(subject: str) -> bool:
    if "*" not in subject and ">" not in subject:
        return True
    return all(token not in ("*", ">") for token in subject.split("."))


def subject_matches(pattern: str, subject: str) -> bool:
    ptoks = pattern.split(".")
    stoks = subject.split(".")
    for i, ptok in enumerate(ptoks):
        if ptok == ">":
            return len(stoks) > i
        if i >= len(stoks):
            return False
        if ptok != "*" and ptok != stoks[i]:
            return False
    return len(ptoks) == len(stoks)


def normalize(filters: tuple[str, ...] | str | None) -> tuple[str, ...] | None:
    """None when the filters match every subject; else a sorted tuple without duplicates."""
    if filters is None:
        return None
    if isinstance(filters, str):
        filters = (filters,)
    if not filters or any(f in (ALL, "") for f in filters):
        return None
    return tuple(sorted(set(filters)))


_NORMALIZED: dict = {}


def normalized(filters: tuple[str, ...] | str | None) -> tuple[str, ...] | None:
    """`normalize`, remembered per filters value: readers pass the same tuple on every call."""
    try:
        return _NORMALIZED[filters]
    except KeyError:
        pass
    except TypeError:  # unhashable (a list)
        return normalize(filters)
    norm = normalize(filters)
    if len(_NORMALIZED) >= 4096:  # many one-off filters: start over
        _NORMALIZED.clear()
    _NORMALIZED[filters] = norm
    return norm


@lru_cache(maxsize=1024)
def matcher(filters: tuple[str, ...]) -> Matcher:
    """A predicate for normalized, non-None filters."""
    literals = frozenset(f for f in filters if is_literal(f))
    patterns = tuple(f for f in filters if not is_literal(f))
    if not patterns:
        return literals.__contains__

    def match(subject: str) -> bool:
        return subject in literals or any(subject_matches(p, subject) for p in patterns)

    return match
