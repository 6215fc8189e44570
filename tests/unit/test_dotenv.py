import pytest

from dynosim import dotenv
from dynosim.errors import ConfigError


def test_key_value_lines_with_comments_and_blanks_ignored():
    text = "# settings\n\nA=1\n   # indented comment\n\t\nB = two words  \n"
    assert dotenv.parse(text) == {"A": "1", "B": "two words"}


def test_crlf_cr_and_a_byte_order_mark_are_accepted():
    assert dotenv.parse("\ufeffA=1\r\nB=2\rC=3") == {"A": "1", "B": "2", "C": "3"}


def test_export_prefix_is_dropped_but_export_can_still_be_a_key():
    assert dotenv.parse("export A=1\nexport\tB=2\nexport=3\n") == {
        "A": "1",
        "B": "2",
        "export": "3",
    }


def test_split_at_the_first_equals_sign():
    text = "DATABASE_URL=postgres://u:p@h/db?sslmode=require\nTOKEN=abc==\n"
    assert dotenv.parse(text) == {
        "DATABASE_URL": "postgres://u:p@h/db?sslmode=require",
        "TOKEN": "abc==",
    }


def test_inline_comment_needs_a_blank_before_the_hash():
    text = "A=1 # one\nB=2\t#two\nURL=http://x/#frag\nC= # nothing\nD=#kept\n"
    assert dotenv.parse(text) == {
        "A": "1",
        "B": "2",
        "URL": "http://x/#frag",
        "C": "",
        "D": "#kept",
    }


def test_quotes_keep_blanks_and_hashes_and_may_be_followed_by_a_comment():
    text = 'A="  a # b  "\nB=\'c # d\' # comment\nC="e"#comment\n'
    assert dotenv.parse(text) == {"A": "  a # b  ", "B": "c # d", "C": "e"}


def test_double_quotes_unescape_and_single_quotes_are_literal():
    text = r"""A="l1\nl2\tx \"q\" back\\slash \d"
B='l1\nl2 \" $HOME'
C=l1\nl2
"""
    assert dotenv.parse(text) == {
        "A": 'l1\nl2\tx "q" back\\slash \\d',
        "B": r"l1\nl2 \" $HOME",
        "C": r"l1\nl2",
    }


def test_quotes_inside_an_unquoted_value_are_kept():
    assert dotenv.parse('A=say "hi"\nB=it\'s\n') == {"A": 'say "hi"', "B": "it's"}


def test_a_quoted_value_may_span_lines_like_a_private_key():
    text = 'PRIVATE_KEY="-----BEGIN KEY-----\nMIIEvQ+/ab=\n-----END KEY-----"\nNEXT=1\n'
    assert dotenv.parse(text) == {
        "PRIVATE_KEY": "-----BEGIN KEY-----\nMIIEvQ+/ab=\n-----END KEY-----",
        "NEXT": "1",
    }
    assert dotenv.parse("A='x\r\n  y'\r\n") == {"A": "x\n  y"}


def test_unicode_keys_values_and_empty_values():
    text = "GREETING=héllo wörld ✓\nA=\nB=\"\"\nC=''\n"
    assert dotenv.parse(text) == {"GREETING": "héllo wörld ✓", "A": "", "B": "", "C": ""}


def test_the_last_of_duplicated_keys_wins():
    assert dotenv.parse("A=1\nB=2\nA=3\n") == {"A": "3", "B": "2"}


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("A=1\nhunter2\n", 2, 'expected KEY=value (no "=" on this line)'),
        ("MY-KEY=hunter2\n", 1, "invalid config var name"),
        ("my key=hunter2\n", 1, "invalid config var name"),
        ("=hunter2\n", 1, "invalid config var name"),
        ("MIIEvQ+/hunter2=\n", 1, "invalid config var name"),
        ("__SECRET=hunter2\n", 1, "config var __SECRET: names starting with __ are reserved"),
        ('A=1\nSECRET="hunter2\n', 2, "the double quote of SECRET's value is never closed"),
        ("SECRET='hunter2\nmore\n", 1, "the single quote of SECRET's value is never closed"),
        ('SECRET="hunter2" trailing\n', 1, "unexpected text after the closing quote of SECRET"),
    ],
)
def test_bad_lines_name_file_and_line_and_never_the_value(text, line, message):
    with pytest.raises(ConfigError) as caught:
        dotenv.parse(text, "app/.env")
    assert str(caught.value).startswith(f"app/.env:{line}: ")
    assert message in str(caught.value)
    assert "hunter2" not in str(caught.value)


def test_load_reads_a_file_and_a_missing_file_is_empty(tmp_path):
    (tmp_path / ".env").write_text("A=1\n", encoding="utf-8")
    assert dotenv.load(tmp_path / ".env") == {"A": "1"}
    assert dotenv.load(tmp_path / "missing.env") == {}


def test_load_errors_name_the_file(tmp_path):
    path = tmp_path / ".env"
    path.write_text("A=1\nB\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=rf"^{path}:2: expected KEY=value"):
        dotenv.load(path)
    path.write_bytes(b"A=1\nB=\xff\xfe\n")
    with pytest.raises(ConfigError, match=rf"^{path}:2: not valid UTF-8 text$"):
        dotenv.load(path)
