"""Just enough PromQL reading to check which series an expression asks for.

`selectors(expr)` lists the metric selectors of an expression as (metric name, label matchers).
It knows the shape of the language, not its grammar: strings, ranges and subqueries, numbers and
durations, the label lists of by/without/on/ignoring/group_left/group_right, and function calls.
A selector without a metric name (`{__name__=~"..."}`) comes back with the name "".
promtool, where installed, checks the full syntax.
"""

from __future__ import annotations

import re

KEYWORDS = {"and", "or", "unless", "offset", "bool", "inf", "nan", "atan2"}
LABEL_LIST_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right"}
_TOKEN = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<string>"(?:\\.|[^"\\])*"|'(?:\\.|[^'\\])*'|`[^`]*`)
  | (?P<matchers>\{[^}]*\})
  | (?P<range>\[[^\]]*\])
  | (?P<number>(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?[a-zA-Z]*)
  | (?P<ident>[A-Za-z_:][A-Za-z0-9_:]*)
  | (?P<variable>\$\{?\w+\}?)
  | (?P<other>.)
    """,
    re.VERBOSE | re.DOTALL,
)
_MATCHER = re.compile(r'([A-Za-z_]\w*)\s*(=~|!~|!=|=)\s*"((?:\\.|[^"\\])*)"')


def matchers(text: str) -> list[tuple[str, str, str]]:
    """`{a="x", b=~"y"}` -> [("a", "=", "x"), ("b", "=~", "y")]."""
    return _MATCHER.findall(text)


def selectors(expr: str) -> list[tuple[str, list[tuple[str, str, str]]]]:
    tokens = [(m.lastgroup, m.group()) for m in _TOKEN.finditer(expr) if m.lastgroup != "space"]
    found = []
    i = 0
    while i < len(tokens):
        kind, text = tokens[i]
        following = tokens[i + 1] if i + 1 < len(tokens) else (None, "")
        if kind == "ident" and text in LABEL_LIST_KEYWORDS:
            # Skip the label list: `by (a, b)` names labels, not metrics.
            if following[1] == "(":
                depth, i = 0, i + 1
                while i < len(tokens):
                    depth += {"(": 1, ")": -1}.get(tokens[i][1], 0)
                    if depth == 0:
                        break
                    i += 1
        elif (kind == "ident" and text not in KEYWORDS and following[1] != "("
              and following[1] not in ("by", "without")):  # `max by (...)`: an aggregation
            labels = matchers(following[1]) if following[0] == "matchers" else []
            found.append((text, labels))
        elif kind == "matchers" and (i == 0 or tokens[i - 1][0] != "ident"):
            found.append(("", matchers(text)))
        i += 1
    return found


def by_labels(expr: str) -> set[str]:
    """Every label named in a by/on/group_left/group_right list of `expr`."""
    names: set[str] = set()
    for match in re.finditer(r"\b(by|on|group_left|group_right)\s*\(([^)]*)\)", expr):
        names.update(n.strip() for n in match.group(2).split(",") if n.strip())
    return names
