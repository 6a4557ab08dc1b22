"""Configuration: nats-server config files (and their YAML twin) -> a validated `Options`.

    from config import load
    options = load("config/examples/single.conf")

The package imports nothing of ours but `common` (see README.md); the command-line layer merges
its flags into the `Options` it gets here, using `parse_duration`/`parse_size` for flag values.
"""

from config.errors import ConfigError
from config.loader import KEYS, from_mapping, load
from config.nodes import Node, Position, to_plain
from config.options import ClusterOptions, JetStreamOptions, Options, Permissions, User
from config.parser import parse_file, parse_text
from config.units import parse_duration, parse_size
from config.yamlconf import parse_yaml_file, parse_yaml_text

__all__ = [
    "KEYS",
    "ClusterOptions",
    "ConfigError",
    "JetStreamOptions",
    "Node",
    "Options",
    "Permissions",
    "Position",
    "User",
    "from_mapping",
    "load",
    "parse_duration",
    "parse_file",
    "parse_size",
    "parse_text",
    "parse_yaml_file",
    "parse_yaml_text",
    "to_plain",
]
