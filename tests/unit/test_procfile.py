import pytest

from dynosim import procfile
from dynosim.errors import ProcfileError


def test_entries_in_file_order_with_comments_and_blanks_ignored():
    text = "# my app\n\nweb: uwsgi uwsgi.ini\n  # indented comment\nworker: python worker.py\n"
    types = procfile.parse(text)
    assert list(types) == ["web", "worker"]
    assert types["web"].command == "uwsgi uwsgi.ini"
    assert types["worker"].line == 5


def test_crlf_and_cr_line_endings_are_accepted():
    assert list(procfile.parse("web: a\r\nworker: b\r\n")) == ["web", "worker"]
    assert list(procfile.parse("web: a\rworker: b")) == ["web", "worker"]


def test_no_space_after_colon_indentation_and_hyphens_like_foreman_and_honcho():
    types = procfile.parse("web:gunicorn app\n  my-worker_2: run it\n")
    assert types["web"].command == "gunicorn app"
    assert types["my-worker_2"].command == "run it"


def test_command_keeps_everything_after_the_first_colon():
    types = procfile.parse('web: bash -c "echo a: b # not a comment"  \n')
    assert types["web"].command == 'bash -c "echo a: b # not a comment"'


def test_web_gets_traffic_and_release_is_not_a_dyno():
    types = procfile.parse("web: a\nrelease: migrate\nworker: b\n")
    assert types["web"].is_web and not types["worker"].is_web
    assert [t.name for t in procfile.dyno_types(types)] == ["web", "worker"]


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("web: a\nthis is junk\n", 2, 'expected "<process type>: <command>"'),
        ("web a\n", 1, 'expected "<process type>: <command>"'),
        ("my worker: a\n", 1, 'expected "<process type>: <command>"'),
        ("web: a\n\nweb: b\n", 3, 'duplicate process type "web" (first defined on line 1)'),
        ("web:\n", 1, 'process type "web" has an empty command'),
        ("worker:    \n", 1, 'process type "worker" has an empty command'),
        ("run: a\n", 1, 'process type "run" is reserved for one-off dynos'),
    ],
)
def test_bad_lines_are_errors_naming_file_and_line(text, line, message):
    with pytest.raises(ProcfileError) as caught:
        procfile.parse(text, "app/Procfile")
    assert caught.value.line == line
    assert str(caught.value).startswith(f"app/Procfile:{line}: ")
    assert message in str(caught.value)


@pytest.mark.parametrize("text", ["", "\n\n", "# only comments\n   \n"])
def test_empty_procfile_is_an_error(text):
    with pytest.raises(ProcfileError, match="Procfile: no process types defined"):
        procfile.parse(text)


def test_missing_procfile_is_an_error_naming_the_path(tmp_path):
    with pytest.raises(ProcfileError) as caught:
        procfile.load(tmp_path)
    assert (
        str(caught.value)
        == f"{tmp_path / 'Procfile'}: no Procfile found; dynosim needs one to know what to run"
    )


def test_undecodable_procfile_names_the_line(tmp_path):
    (tmp_path / "Procfile").write_bytes(b"web: a\nworker: \xff\xfe\n")
    with pytest.raises(ProcfileError, match=r"Procfile:2: not valid UTF-8"):
        procfile.load(tmp_path)


def test_example_procfiles_parse():
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    assert list(procfile.load(root / "examples" / "flask_app")) == ["web", "worker"]
