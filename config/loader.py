"""Configuration files -> a validated `Options`: the package's entry points.

The file is read by the nats.conf parser or the YAML reader into a `Node` tree, the top-level
key table (`config.keys.KEYS`, with the block tables it nests) is applied to a fresh `Options`,
and the rules that combine keys run last (`config.checks`). Anything wrong raises
`ConfigError` naming file, line, column and key.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from config.checks import check_options
from config.keys import KEYS, TOP_LEVEL
from config.nodes import ConfigMap, Node, Position, from_plain
from config.options import Options
from config.parser import parse_file
from config.table import apply_section
from config.unsupported import TOP_LEVEL as UNSUPPORTED_KEYS
from config.values import Field
from config.yamlconf import parse_yaml_file

__all__ = ["KEYS", "UNSUPPORTED_KEYS", "YAML_SUFFIXES", "config_format", "from_mapping", "load"]

YAML_SUFFIXES = (".yaml", ".yml")


def load(path: str | os.PathLike[str]) -> Options:
    """Read and validate a config file: YAML for `.yaml`/`.yml`, the nats.conf syntax otherwise."""
    name = os.fspath(path)
    root = parse_yaml_file(name) if config_format(name) == "yaml" else parse_file(name)
    options = _build(root, name)
    options.config_file = name
    return options


def from_mapping(data: Mapping[str, Any], source: str = "<mapping>") -> Options:
    """Validate an already-parsed config: plain Python data or a `dict[str, Node]` tree.

    Plain data has no line numbers, so its errors name only `source` and the key.
    """
    root: ConfigMap
    if all(isinstance(value, Node) for value in data.values()):
        root = dict(data)
    else:
        root = from_plain(dict(data), source).value
    return _build(root, source)


def config_format(path: str) -> str:
    """The reader `load` picks for `path`: "yaml" or "conf"."""
    return "yaml" if os.path.splitext(path)[1].lower() in YAML_SUFFIXES else "conf"


def _build(root: ConfigMap, source: str) -> Options:
    options = Options()
    top = Field("", "", Node(root, Position(source)))
    apply_section(top, TOP_LEVEL, options)
    check_options(options, top)
    return options
