"""YAML configuration files, read into the same `dict[str, Node]` tree as nats.conf files.

The keys are the nats.conf keys. Values follow YAML, with two additions so a YAML file can say
exactly what its nats.conf twin says:
  * an unquoted scalar that YAML would read as a string gets the nats.conf typing when it is a
    single nats.conf value: `1GB` is 1073741824, `TRUE`/`On` are booleans, `1k` is 1000;
  * an unquoted `$NAME` is the environment variable NAME, parsed as a nats.conf value. YAML has
    no block variables: use YAML anchors (`&x` / `*x`) to repeat values.
Quoted scalars are always strings, as in nats.conf. So, as in nats.conf, quote durations whose
unit is also a size suffix: `ping_interval: "2m"` (unquoted, `2m` is the number 2000000, which
the loader refuses where a duration is expected).

We walk the composed node graph rather than `safe_load`'s output because only nodes carry marks
(line and column) for error messages.
"""

from __future__ import annotations

import os
from pathlib import Path

import yaml

from config.errors import ConfigError
from config.lexer import Kind, Lexer
from config.nodes import ConfigMap, Node, Position
from config.parser import parse_text, relocate

# libyaml is much faster; the pure-Python loader produces the same node graph.
_Loader: type = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_STR_TAG = "tag:yaml.org,2002:str"
_MERGE_TAG = "tag:yaml.org,2002:merge"
_resolver = yaml.resolver.Resolver()
_NATSCONF_SCALARS = (Kind.BOOL, Kind.INTEGER, Kind.FLOAT, Kind.DATETIME, Kind.VARIABLE)


def parse_yaml_file(path: str | os.PathLike[str]) -> ConfigMap:
    """Parse a YAML config file. Errors are `ConfigError`s naming file, line and column."""
    name = os.fspath(path)
    try:
        text = Path(name).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config file: {exc}", Position(name)) from exc
    return parse_yaml_text(text, name)


def parse_yaml_text(text: str, filename: str = "<string>") -> ConfigMap:
    try:
        root = yaml.compose(text, Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        raise ConfigError(f"invalid YAML: {exc.problem or exc}", _position(mark, filename)) from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"invalid YAML: {exc}", Position(filename)) from exc
    if root is None:
        return {}
    if not isinstance(root, yaml.MappingNode):
        raise ConfigError("the top level of a YAML config must be a mapping", _pos(root, filename))
    return _Walker(filename).mapping(root)


def _position(mark: yaml.Mark | None, filename: str) -> Position:
    if mark is None:
        return Position(filename)
    return Position(filename, mark.line + 1, mark.column + 1)


def _pos(node: yaml.Node, filename: str) -> Position:
    return _position(node.start_mark, filename)


class _Walker:
    """Turns one composed YAML document into Nodes."""

    def __init__(self, filename: str) -> None:
        self.file = filename
        # Node ids being walked: an alias to an enclosing node would recurse forever.
        self.active: set[int] = set()
        self.constructor = yaml.constructor.SafeConstructor()

    def value(self, node: yaml.Node) -> Node:
        if id(node) in self.active:
            raise ConfigError("recursive YAML alias", _pos(node, self.file))
        self.active.add(id(node))
        try:
            if isinstance(node, yaml.MappingNode):
                return Node(self.mapping(node), _pos(node, self.file))
            if isinstance(node, yaml.SequenceNode):
                return Node([self.value(item) for item in node.value], _pos(node, self.file))
            return self.scalar(node)
        finally:
            self.active.discard(id(node))

    def mapping(self, node: yaml.MappingNode) -> ConfigMap:
        result: ConfigMap = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                self._merge(result, value_node)
                continue
            if not isinstance(key_node, yaml.ScalarNode):
                raise ConfigError("mapping keys must be plain strings", _pos(key_node, self.file))
            child = self.value(value_node)
            child.key_pos = _pos(key_node, self.file)
            result[str(key_node.value)] = child
        return result

    def _merge(self, result: ConfigMap, source: yaml.Node) -> None:
        """`<<: *anchor` (or a list of anchors): keys already present win, as in YAML."""
        sources = source.value if isinstance(source, yaml.SequenceNode) else [source]
        for item in sources:
            if not isinstance(item, yaml.MappingNode):
                problem = "'<<' needs a mapping or a list of mappings"
                raise ConfigError(problem, _pos(item, self.file))
            for key, child in self.value(item).value.items():
                result.setdefault(key, child)

    def scalar(self, node: yaml.ScalarNode) -> Node:
        pos = _pos(node, self.file)
        if not node.style and _implicit_str(node):  # plain: None (Python) or "" (libyaml)
            natsconf = self._natsconf_scalar(node.value, pos)
            if natsconf is not None:
                return natsconf
        try:
            value = self.constructor.construct_object(node, deep=True)
        except yaml.YAMLError as exc:
            raise ConfigError(f"invalid YAML value {node.value!r}: {exc}", pos) from exc
        return Node(value, pos, raw=str(node.value))

    def _natsconf_scalar(self, text: str, pos: Position) -> Node | None:
        """The nats.conf reading of a plain scalar, or None if it is not one nats.conf value."""
        try:
            tokens = Lexer(f"v={text}", self.file).run()
        except ConfigError:
            return None
        if len(tokens) != 2 or tokens[1].kind not in _NATSCONF_SCALARS:
            return None
        token = tokens[1]
        spelled = "$" + token.text if token.kind is Kind.VARIABLE else token.text
        if spelled != text:  # `1 // note` lexes as 1 plus a comment: YAML says it is a string
            return None
        # Parse through the nats.conf parser so sizes, booleans and `$NAME` behave identically.
        try:
            node = parse_text(f"v={text}", self.file)["v"]
        except ConfigError as exc:
            raise ConfigError(exc.problem, pos) from exc
        relocate(node, pos)
        return node


def _implicit_str(node: yaml.ScalarNode) -> bool:
    """True for a plain scalar YAML itself reads as a string (not `!!str 123`, not `123`)."""
    if node.tag != _STR_TAG:
        return False
    return _resolver.resolve(yaml.ScalarNode, node.value, (True, False)) == _STR_TAG
