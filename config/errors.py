"""The one exception type of the config package.

Messages copy nats-server's shape so operators can grep either server's output the same way:

    <file>:<line>:<col>: unknown field "foo"
    <file>:<line>:<col>: <key>: <problem>
    <file>:<line>:<col>: <problem>          (syntax errors, which belong to no key)
"""

from __future__ import annotations

from config.nodes import Position


class ConfigError(ValueError):
    """A configuration that must not be run. `file`, `line`, `column` point into the source.

    `line` and `column` are 1-based; 0 means unknown (e.g. values built by `from_mapping`).
    `key` is the dotted path of the offending key (`cluster.routes[1]`), or "" for syntax errors.
    """

    def __init__(
        self, problem: str, pos: Position | None = None, key: str = "", *, key_in_text: bool = True
    ) -> None:
        self.problem = problem
        self.file = pos.file if pos else ""
        self.line = pos.line if pos else 0
        self.column = pos.column if pos else 0
        self.key = key
        prefix = f"{self.location()}: "
        if key and key_in_text:
            prefix += f"{key}: "
        super().__init__(prefix + problem)

    @classmethod
    def unknown_field(cls, name: str, pos: Position | None, key: str) -> ConfigError:
        """nats-server's `unknown field "name"`: the message names the key as spelled."""
        return cls(f'unknown field "{name}"', pos, key, key_in_text=False)

    def location(self) -> str:
        """`file:line:col`, dropping the parts we do not know."""
        if not self.line:
            return self.file or "<config>"
        return f"{self.file}:{self.line}:{self.column}"
