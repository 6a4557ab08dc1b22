"""The nats.conf and YAML readers: syntax, typing, positions, variables, includes."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from config import ConfigError, parse_file, parse_text, parse_yaml_text, to_plain
from config.lexer import Kind, lex
from config.parser import parse_size_literal


def plain(text: str) -> dict:
    return to_plain(parse_text(text, "t.conf"))


def parse_error(text: str) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        parse_text(text, "t.conf")
    return caught.value


# --- separators, blocks, arrays, comments ---------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "port: 4222",
        "port = 4222",
        "port 4222",
        "port\t4222",
        "port:4222",
        "port=4222",
        "port: 4222;",
        "port: 4222,",
        "port\n4222",  # white space (newlines included) separates a key from its value
        '"port": 4222',
        "'port': 4222",
        "port: 4222 # comment",
        "port: 4222 // comment",
        "# leading comment\nport: 4222",
        "{ port: 4222 }",
        '{ "port": 4222 }',
    ],
)
def test_key_value_separators(text: str) -> None:
    assert plain(text) == {"port": 4222}


@pytest.mark.parametrize(
    "text",
    [
        "cluster { name: c, port: 6222 }",
        "cluster: { name: c, port: 6222 }",
        "cluster = { name: c; port: 6222 }",
        "cluster {\n  name: c\n  port: 6222\n}",
        "cluster {\n  name = c  # comment\n  // comment\n  port 6222\n}",
        "cluster {\n  name:\n    c\n  port: 6222\n}",  # inside a block a value may follow a newline
    ],
)
def test_block_forms(text: str) -> None:
    assert plain(text) == {"cluster": {"name": "c", "port": 6222}}


@pytest.mark.parametrize(
    "text",
    [
        "tags: [a, b, c]",
        "tags: [a,b,c]",
        "tags: [\n  a\n  b\n  c\n]",
        "tags: [\n  a,  # one\n  b,  // two\n  c,\n]",
        "tags = [ 'a', \"b\", c ]",
    ],
)
def test_array_forms(text: str) -> None:
    assert plain(text) == {"tags": ["a", "b", "c"]}


def test_nested_arrays_and_maps() -> None:
    assert plain("a: [[1, 2], {b: [x]}, []]") == {"a": [[1, 2], {"b": ["x"]}, []]}


def test_multiple_keys_on_one_line() -> None:
    assert plain("port: 1; debug: true, trace: false") == {
        "port": 1,
        "debug": True,
        "trace": False,
    }


def test_repeated_key_keeps_the_last_value() -> None:
    assert plain("port: 1\nport: 2") == {"port": 2}


def test_crlf_line_endings() -> None:
    text = "port: 4222\r\ncluster {\r\n  name: c # x\r\n}\r\ntags: [a,\r\n b]\r\n"
    assert plain(text) == {"port": 4222, "cluster": {"name": "c"}, "tags": ["a", "b"]}
    assert parse_text(text, "t.conf")["tags"].value[1].pos.line == 6


def test_empty_and_comment_only_files() -> None:
    assert plain("") == {}
    assert plain("# nothing\n// here\n\n") == {}


# --- scalars ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("literal", "value"),
    [
        ("true", True),
        ("TRUE", True),
        ("yes", True),
        ("On", True),
        ("false", False),
        ("No", False),
        ("off", False),
        ("OFF", False),
    ],
)
def test_booleans_are_case_insensitive(literal: str, value: bool) -> None:
    assert plain(f"x: {literal}") == {"x": value}


@pytest.mark.parametrize(
    ("literal", "value"),
    [
        ("0", 0),
        ("42", 42),
        ("-7", -7),
        ("1k", 1000),
        ("1K", 1000),
        ("1kb", 1024),
        ("1KB", 1024),
        ("1ki", 1024),
        ("1KiB", 1024),
        ("2m", 2_000_000),
        ("2mb", 2 * 2**20),
        ("2MiB", 2 * 2**20),
        ("1g", 10**9),
        ("1G", 1_000_000_000),
        ("1GB", 1_073_741_824),
        ("1gi", 2**30),
        ("1t", 10**12),
        ("1TB", 2**40),
        ("1p", 10**15),
        ("1pib", 2**50),
        ("1e", 10**18),
        ("1EB", 2**60),
        ("-1k", -1000),
    ],
)
def test_integer_size_suffixes(literal: str, value: int) -> None:
    assert plain(f"x: {literal}") == {"x": value}


def test_floats() -> None:
    assert plain("x: 1.5\ny: -0.25") == {"x": 1.5, "y": -0.25}


def test_zulu_datetime() -> None:
    assert plain("x: 2006-01-02T15:04:05Z") == {"x": datetime(2006, 1, 2, 15, 4, 5, tzinfo=UTC)}


@pytest.mark.parametrize(
    ("literal", "value"),
    [
        ("nats://host:4222", "nats://host:4222"),
        ("0.0.0.0:4222", "0.0.0.0:4222"),  # digits, dots and colons: an address, not a float
        ("127.0.0.1", "127.0.0.1"),
        ("10s", "10s"),  # a number followed by a non-suffix letter is a string
        ("500ms", "500ms"),
        ("1h30m", "1h30m"),
        ("1kx", "1kx"),
        ("a-b_c", "a-b_c"),
        ("foo#bar", "foo#bar"),  # '#' starts a comment only between values
        ("a\\tb", "a\tb"),  # bare strings take escapes too (nats-server)
        ("$2a$11$hash", "$2a$11$hash"),  # an unquoted bcrypt hash is not a variable
    ],
)
def test_bare_strings(literal: str, value: str) -> None:
    assert plain(f"x: {literal}") == {"x": value}


def test_double_quoted_escapes() -> None:
    assert plain(r'x: "tab\there\nnl \"q\" back\\slash \x41\x42"') == {
        "x": 'tab\there\nnl "q" back\\slash AB'
    }


def test_single_quotes_are_raw() -> None:
    assert plain(r"x: 'no\tescape $HOME'") == {"x": "no\\tescape $HOME"}


def test_quoted_values_keep_their_type_as_string() -> None:
    assert plain('a: "4222"\nb: "true"\nc: "1GB"') == {"a": "4222", "b": "true", "c": "1GB"}


def test_block_string() -> None:
    assert plain("x (\nline one\n  line two\n)\ny: 1") == {
        "x": "\nline one\n  line two\n",
        "y": 1,
    }


def test_number_before_closing_bracket_is_a_number() -> None:
    # nats-server 2.9.10 reads the last element of [1, 2] as the string "2"; we do not.
    assert plain("x: [1, 2]") == {"x": [1, 2]}


# --- syntax errors, with positions ------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "line", "column", "fragment"),
    [
        ("port:\n4222", 1, 6, "new line"),
        ("port", 1, 5, "has no value"),
        ("a: 1\nb", 2, 2, "has no value"),
        ("a: 1 2", 1, 6, "to end with a new line"),
        ("a: [1,,2]", 1, 7, "unexpected ','"),
        ("a: [1 2]", 1, 7, "expected ',' or ']'"),
        ("a: [1, 2", 1, 9, "but got end of file"),
        ("a: [1, ", 1, 8, "end of file inside an array"),
        ("a: { b: 1", 1, 10, "end of file inside a '{ }' block"),
        ("a: { b }", 1, 8, "has no value"),
        ("}", 1, 1, "unexpected '}'"),
        ('a: "abc', 1, 4, "inside a quoted string"),
        ("a: 'abc", 1, 4, "inside a quoted string"),
        (r'a: "\q"', 1, 6, "invalid escape character 'q'"),
        (r'a: "\xZZ"', 1, 6, "hexadecimal"),
        ("a: .5", 1, 4, "floats must start with a digit"),
        ("a: 1.", 1, 5, "digit after the '.'"),
        ("a: 1.5s", 1, 7, "to end with a new line"),
        ("a: 12-1", 1, 6, "full Zulu form"),
        ("a: 2006-01-02", 1, 14, "ISO8601"),
        ("a: -x", 1, 4, "expected a digit"),
        ("a: 1kbb", 1, 4, "invalid size suffix"),
        ("a: 9223372036854775808", 1, 4, "out of the range"),
        ("a: 10000000000EB", 1, 4, "out of the range"),
        ("a: 2006-13-02T15:04:05Z", 1, 4, "invalid Zulu date"),
        ("= 1", 1, 1, "unexpected key separator"),
        ("x: 1\n\n   y: [a,\n ,]", 4, 2, "unexpected ','"),
    ],
)
def test_syntax_errors_name_file_line_and_column(
    text: str, line: int, column: int, fragment: str
) -> None:
    error = parse_error(text)
    assert (error.file, error.line, error.column) == ("t.conf", line, column)
    assert fragment in str(error)
    assert str(error).startswith(f"t.conf:{line}:{column}: ")


def test_positions_of_keys_and_values() -> None:
    root = parse_text("a: 1\ncluster {\n  port:   6222\n  routes: [\n    x\n  ]\n}\n", "p.conf")
    port = root["cluster"].value["port"]
    assert (port.key_pos.line, port.key_pos.column) == (3, 3)
    assert (port.pos.line, port.pos.column) == (3, 11)
    route = root["cluster"].value["routes"].value[0]
    assert (route.pos.file, route.pos.line, route.pos.column) == ("p.conf", 5, 5)
    assert root["a"].raw == "1"


def test_lexer_tokens() -> None:
    tokens = lex('a: [1k, "s", $V, yes]\ninclude x.conf\n', "l.conf")
    assert [(t.kind, t.text) for t in tokens] == [
        (Kind.KEY, "a"),
        (Kind.ARRAY_START, "["),
        (Kind.INTEGER, "1k"),
        (Kind.STRING, "s"),
        (Kind.VARIABLE, "V"),
        (Kind.BOOL, "yes"),
        (Kind.ARRAY_END, "]"),
        (Kind.INCLUDE, "x.conf"),
    ]


def test_parse_size_literal() -> None:
    assert parse_size_literal("64MB") == 64 * 2**20
    assert parse_size_literal("1k") == 1000
    with pytest.raises(ValueError):
        parse_size_literal("1x")
    with pytest.raises(ValueError):
        parse_size_literal("MB")


# --- variables --------------------------------------------------------------------------------


def test_variable_defined_earlier_in_the_file() -> None:
    root = parse_text("PORT: 4222\nport: $PORT", "t.conf")
    assert to_plain(root) == {"PORT": 4222, "port": 4222}
    assert root["PORT"].used_as_variable
    assert not root["port"].used_as_variable


def test_variable_scoping_innermost_block_wins() -> None:
    text = "N: outer\na { N: inner, x: $N, b { y: $N } }\nz: $N"
    assert plain(text) == {
        "N": "outer",
        "a": {"N": "inner", "x": "inner", "b": {"y": "inner"}},
        "z": "outer",
    }


def test_variable_of_an_inner_block_is_not_visible_outside(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("INNER_ONLY", raising=False)
    error = parse_error("a { INNER_ONLY: 1 }\nb: $INNER_ONLY")
    assert (error.line, error.column) == (2, 4)
    assert "INNER_ONLY" in str(error) and "can not be found" in str(error)


def test_variable_must_be_defined_before_use(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LATER", raising=False)
    assert "can not be found" in str(parse_error("a: $LATER\nLATER: 1"))


def test_variable_holding_a_block_and_an_array() -> None:
    text = "AUTH { user: a, password: b }\nR: [x, y]\nauthorization: $AUTH\nroutes: $R"
    out = plain(text)
    assert out["authorization"] == {"user": "a", "password": "b"}
    assert out["routes"] == ["x", "y"]


def test_environment_variable_is_parsed_as_config_text(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CFG_PORT", "4333")
    monkeypatch.setenv("CFG_SIZE", "1GB")
    monkeypatch.setenv("CFG_FLAG", "yes")
    monkeypatch.setenv("CFG_NAME", "nats-1")
    monkeypatch.setenv("CFG_LIST", "[a, b]")
    monkeypatch.setenv("CFG_QUOTED", '"4222"')
    text = "a: $CFG_PORT\nb: $CFG_SIZE\nc: $CFG_FLAG\nd: $CFG_NAME\ne: $CFG_LIST\nf: $CFG_QUOTED"
    assert plain(text) == {
        "a": 4333,
        "b": 2**30,
        "c": True,
        "d": "nats-1",
        "e": ["a", "b"],
        "f": "4222",
    }


def test_environment_value_is_reported_at_the_reference(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CFG_PORT", "4333")
    node = parse_text("\n  port:   $CFG_PORT", "t.conf")["port"]
    assert (node.pos.line, node.pos.column) == (2, 11)


def test_block_variable_shadows_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHADOWED", "from-env")
    assert plain("SHADOWED: from-file\nx: $SHADOWED") == {"SHADOWED": "from-file", "x": "from-file"}


def test_no_substitution_inside_quotes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CFG_NAME", "nats-1")
    assert plain('a: "$CFG_NAME"\nb: \'$CFG_NAME\'\nc: "x-$CFG_NAME"') == {
        "a": "$CFG_NAME",
        "b": "$CFG_NAME",
        "c": "x-$CFG_NAME",
    }


def test_unknown_variable_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CFG_NOWHERE", raising=False)
    error = parse_error("x: 1\nport: $CFG_NOWHERE")
    assert (error.file, error.line, error.column) == ("t.conf", 2, 7)
    assert "variable reference for 'CFG_NOWHERE' can not be found" in str(error)


def test_environment_reference_cycle_is_detected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CYCLE_A", "$CYCLE_B")
    monkeypatch.setenv("CYCLE_B", "$CYCLE_A")
    error = parse_error("x: $CYCLE_A")
    assert "variable reference cycle: $CYCLE_A -> $CYCLE_B -> $CYCLE_A" in str(error)
    assert (error.line, error.column) == (1, 4)


def test_self_referencing_environment_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CYCLE_SELF", "$CYCLE_SELF")
    assert "cycle" in str(parse_error("x: $CYCLE_SELF"))


def test_environment_chain_without_cycle(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHAIN_A", "$CHAIN_B")
    monkeypatch.setenv("CHAIN_B", "42")
    assert plain("x: $CHAIN_A\ny: $CHAIN_A") == {"x": 42, "y": 42}


def test_unparsable_environment_value(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CFG_BAD", "two words")
    error = parse_error("x: $CFG_BAD")
    assert "variable reference for 'CFG_BAD' could not be parsed" in str(error)


# --- include ----------------------------------------------------------------------------------


def test_include_relative_to_the_including_file(tmp_path: Path) -> None:
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "sub").mkdir()
    (tmp_path / "conf" / "sub" / "auth.conf").write_text("user: a\npassword: b\n")
    (tmp_path / "conf" / "limits.conf").write_text("max_payload: 2MB\n")
    (tmp_path / "conf" / "main.conf").write_text(
        "include ./limits.conf\nauthorization {\n  include 'sub/auth.conf'\n  timeout: 3\n}\n"
    )
    assert to_plain(parse_file(tmp_path / "conf" / "main.conf")) == {
        "max_payload": 2 * 2**20,
        "authorization": {"user": "a", "password": "b", "timeout": 3},
    }


@pytest.mark.parametrize("spelling", ['include "x.conf"', "include 'x.conf'", "include x.conf"])
def test_include_spellings(tmp_path: Path, spelling: str) -> None:
    (tmp_path / "x.conf").write_text("port: 1\n")
    (tmp_path / "m.conf").write_text(f"{spelling}\ndebug: true\n")
    assert to_plain(parse_file(tmp_path / "m.conf")) == {"port": 1, "debug": True}


def test_include_keyword_is_case_insensitive(tmp_path: Path) -> None:
    (tmp_path / "x.conf").write_text("port: 1\n")
    (tmp_path / "m.conf").write_text("INCLUDE x.conf\n")
    assert to_plain(parse_file(tmp_path / "m.conf")) == {"port": 1}


def test_included_keys_and_later_keys_override_in_order(tmp_path: Path) -> None:
    (tmp_path / "x.conf").write_text("port: 1\ndebug: true\n")
    (tmp_path / "m.conf").write_text("port: 0\ninclude x.conf\ndebug: false\n")
    assert to_plain(parse_file(tmp_path / "m.conf")) == {"port": 1, "debug": False}


def test_variables_defined_in_an_include_are_usable_after_it(tmp_path: Path) -> None:
    (tmp_path / "vars.conf").write_text("PORT: 4999\n")
    (tmp_path / "m.conf").write_text("include vars.conf\nport: $PORT\n")
    root = parse_file(tmp_path / "m.conf")
    assert root["port"].value == 4999
    assert root["PORT"].used_as_variable


def test_missing_include_names_the_including_file_and_line(tmp_path: Path) -> None:
    main = tmp_path / "main.conf"
    main.write_text("port: 4222\n\ncluster {\n  include ./nope.conf\n}\n")
    with pytest.raises(ConfigError) as caught:
        parse_file(main)
    error = caught.value
    assert (error.file, error.line, error.column) == (str(main), 4, 11)
    assert "nope.conf" in str(error) and "No such file" in str(error)


def test_syntax_error_in_an_include_names_the_included_file(tmp_path: Path) -> None:
    (tmp_path / "bad.conf").write_text("ok: 1\nbroken: [1,,2]\n")
    (tmp_path / "main.conf").write_text("include bad.conf\n")
    with pytest.raises(ConfigError) as caught:
        parse_file(tmp_path / "main.conf")
    assert (caught.value.file, caught.value.line) == (str(tmp_path / "bad.conf"), 2)


def test_include_cycle_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "a.conf").write_text("include b.conf\n")
    (tmp_path / "b.conf").write_text("include a.conf\n")
    with pytest.raises(ConfigError) as caught:
        parse_file(tmp_path / "a.conf")
    assert "include cycle" in str(caught.value)
    assert caught.value.file == str(tmp_path / "b.conf")


@pytest.mark.parametrize("text", ["include\n", "include [a]", "include 5", "include {a}"])
def test_include_needs_a_file_name(text: str) -> None:
    assert "include" in str(parse_error(text))


def test_unreadable_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_file(tmp_path / "absent.conf")
    assert caught.value.file == str(tmp_path / "absent.conf")


# --- YAML -------------------------------------------------------------------------------------


def yaml_plain(text: str) -> dict:
    return to_plain(parse_yaml_text(text, "t.yaml"))


def test_yaml_structure_and_positions() -> None:
    root = parse_yaml_text("port: 4222\ncluster:\n  name: c\n  routes:\n    - a\n", "t.yaml")
    assert to_plain(root) == {"port": 4222, "cluster": {"name": "c", "routes": ["a"]}}
    name = root["cluster"].value["name"]
    assert (name.key_pos.line, name.key_pos.column) == (3, 3)
    assert (name.pos.line, name.pos.column) == (3, 9)
    route = root["cluster"].value["routes"].value[0]
    assert (route.pos.file, route.pos.line, route.pos.column) == ("t.yaml", 5, 7)


def test_yaml_plain_scalars_follow_the_natsconf_rules(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("Y_PORT", "4333")
    text = (
        "a: 1GB\nb: 1G\nc: 1k\nd: TRUE\ne: off\nf: $Y_PORT\ng: 0.0.0.0:4222\n"
        "h: 1.5\ni: 10s\nj: '1GB'\nk: \"$Y_PORT\"\nl: 1 // not a comment in YAML\nm: !!str 42\n"
    )
    assert yaml_plain(text) == {
        "a": 2**30,
        "b": 10**9,
        "c": 1000,
        "d": True,
        "e": False,
        "f": 4333,
        "g": "0.0.0.0:4222",
        "h": 1.5,
        "i": "10s",
        "j": "1GB",  # quoted: a string, as in nats.conf
        "k": "$Y_PORT",
        "l": "1 // not a comment in YAML",
        "m": "42",
    }


def test_yaml_anchors_and_merge_keys() -> None:
    text = (
        "defaults: &d {timeout: 2, user: a}\n"
        "authorization:\n  <<: *d\n  user: b\n"
        "routes: &r [x, y]\nagain: *r\n"
    )
    out = yaml_plain(text)
    assert out["authorization"] == {"user": "b", "timeout": 2}
    assert out["again"] == ["x", "y"]


def test_yaml_errors_have_positions() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_yaml_text("port: 4222\ncluster: [a\n", "t.yaml")
    assert caught.value.file == "t.yaml" and caught.value.line >= 2
    with pytest.raises(ConfigError) as caught:
        parse_yaml_text("- a\n- b\n", "t.yaml")
    assert "mapping" in str(caught.value)


def test_yaml_unknown_environment_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("Y_NOWHERE", raising=False)
    with pytest.raises(ConfigError) as caught:
        parse_yaml_text("a: 1\nserver_name: $Y_NOWHERE\n", "t.yaml")
    assert (caught.value.file, caught.value.line, caught.value.column) == ("t.yaml", 2, 14)


def test_empty_yaml_is_empty() -> None:
    assert yaml_plain("") == {}
    assert yaml_plain("# only a comment\n") == {}
