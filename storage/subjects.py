"""Subject filters as stores use them: normalising filter tuples and building fast predicates.

Matching itself (`*` one token, `>` one or more trailing tokens) is `common.subjects`, shared with
the broker; `is_literal` and `subject_matches` are re-exported here for the stores' callers.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache

from common.subjects import is_literal, subject_matches
from storage.store import ALL

__all__ = ["Matcher", "is_literal", "matcher", "normalize", "normalized", "subject_matches"]

Matcher = Callable[[str], bool]


def normalize(filters: tuple[str, ...] | str | None) -> tuple[str, ...] | None:
    """None when the filters match every subject; else a sorted tuple without duplicates."""
    if filters is None:
        return None
    if isinstance(filters, str):
        filters = (filters,)
    if not filters or any(f in (ALL, "") for f in filters):
        return None
    return tuple(sorted(set(filters)))


_NORMALIZED: dict[object, tuple[str, ...] | None] = {}


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
    """A predicate for normalized, non-None filters. On the hot path of filtered reads: literal
    filters are one set lookup, and a single wildcard pattern (the common case) is matched
    without a generator."""
    literals = frozenset(f for f in filters if is_literal(f))
    patterns = tuple(f for f in filters if not is_literal(f))
    if not patterns:
        return literals.__contains__
    if len(patterns) == 1:
        (pattern,) = patterns
        if not literals:
            return lambda subject: subject_matches(pattern, subject)

        def match_one(subject: str) -> bool:
            return subject in literals or subject_matches(pattern, subject)

        return match_one

    def match(subject: str) -> bool:
        if subject in literals:
            return True
        # A loop, not any(generator): half the cost per pattern on this hot path.
        for pattern in patterns:  # noqa: SIM110
            if subject_matches(pattern, subject):
                return True
        return False

    return match
