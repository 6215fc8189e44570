import pytest

from dynosim import runtime
from dynosim.errors import RuntimeSelectionError


def write(folder, name, text):
    (folder / name).write_text(text)
    return folder


def test_no_version_file_gives_the_newest_stack(tmp_path):
    selection = runtime.select_stack(tmp_path)
    assert selection.stack == runtime.STACKS[-1]
    assert selection.warning is None


@pytest.mark.parametrize(
    ("name", "text", "suite"),
    [
        ("runtime.txt", "python-3.11\n", "bookworm"),
        ("runtime.txt", "python-3.9.18", "bullseye"),
        ("runtime.txt", "\npython-3.13.1\n", "trixie"),
        (".python-version", "3.11\n", "bookworm"),
        (".python-version", "# pinned\n\n3.13.0\n", "trixie"),
    ],
)
def test_exact_python_picks_its_stack(tmp_path, name, text, suite):
    selection = runtime.select_stack(write(tmp_path, name, text))
    assert selection.stack.suite == suite
    assert selection.warning is None


def test_runtime_txt_wins_over_python_version(tmp_path):
    write(tmp_path, "runtime.txt", "python-3.9")
    write(tmp_path, ".python-version", "3.13")
    assert runtime.select_stack(tmp_path).stack.suite == "bullseye"


@pytest.mark.parametrize(("version", "suite"), [("3.10", "bookworm"), ("3.12.4", "trixie")])
def test_missing_python_gets_the_nearest_newer_with_a_warning(tmp_path, version, suite):
    selection = runtime.select_stack(write(tmp_path, "runtime.txt", f"python-{version}"))
    assert selection.stack.suite == suite
    assert f"asks for Python {version}; using the nearest newer" in selection.warning


def test_strict_runtime_refuses_a_near_match(tmp_path):
    write(tmp_path, "runtime.txt", "python-3.10")
    with pytest.raises(RuntimeSelectionError, match=r"runtime.txt:1: .*3.10 exactly"):
        runtime.select_stack(tmp_path, strict=True)


@pytest.mark.parametrize(
    ("name", "text", "major"),
    [("runtime.txt", "python-3.7.17", "3.7"), (".python-version", "3.8", "3.8")],
)
def test_end_of_life_python_is_refused_in_herokus_words(tmp_path, name, text, major):
    write(tmp_path, name, text)
    with pytest.raises(RuntimeSelectionError) as error:
        runtime.select_stack(tmp_path)
    message = str(error.value)
    assert "The requested Python version has reached end-of-life." in message
    assert f"Python {major} has reached its upstream end-of-life" in message
    assert (
        f"Please upgrade to at least Python 3.9 by changing the\nversion in your {name} file"
        in (message)
    )


@pytest.mark.parametrize("version", ["3.14", "4.0"])
def test_python_newer_than_every_stack_is_not_recognised(tmp_path, version):
    write(tmp_path, ".python-version", version)
    with pytest.raises(
        RuntimeSelectionError, match="The requested Python version isn't recognised"
    ):
        runtime.select_stack(tmp_path)


PIPFILE_LOCK = '{"_meta": {"requires": {%s}}, "default": {}}'


@pytest.mark.parametrize(
    ("requires", "suite", "requested"),
    [
        ('"python_version": "3.9"', "bullseye", "3.9"),
        ('"python_version": "3.9", "python_full_version": "3.13.1"', "trixie", "3.13.1"),
        ("", "trixie", None),
    ],
)
def test_pipfile_lock_names_the_python_of_a_pipenv_app(tmp_path, requires, suite, requested):
    write(tmp_path, "Pipfile", "")
    write(tmp_path, "Pipfile.lock", PIPFILE_LOCK % requires)
    selection = runtime.select_stack(tmp_path)
    assert (selection.stack.suite, selection.requested) == (suite, requested)
    if requested:
        assert selection.announcement == f"Using Python {requested} specified in Pipfile.lock"


def test_version_files_win_over_pipfile_lock_in_herokus_order(tmp_path):
    write(tmp_path, "Pipfile", "")
    write(tmp_path, "Pipfile.lock", PIPFILE_LOCK % '"python_version": "3.9"')
    write(tmp_path, ".python-version", "3.11\n")
    assert runtime.select_stack(tmp_path).stack.suite == "bookworm"
    write(tmp_path, "runtime.txt", "python-3.13")
    selection = runtime.select_stack(tmp_path)
    assert selection.stack.suite == "trixie"
    assert selection.announcement == "Using Python 3.13 specified in runtime.txt"


def test_pipfile_lock_with_a_bad_version_or_json_is_an_error(tmp_path):
    write(tmp_path, "Pipfile", "")
    write(tmp_path, "Pipfile.lock", PIPFILE_LOCK % '"python_version": "3.*"')
    with pytest.raises(RuntimeSelectionError, match=r"Pipfile.lock:1: Invalid Python version"):
        runtime.select_stack(tmp_path)
    write(tmp_path, "Pipfile.lock", "{not json")
    with pytest.raises(RuntimeSelectionError, match="Can't parse Pipfile.lock"):
        runtime.select_stack(tmp_path)


def test_uv_needs_a_python_version_file_as_on_heroku(tmp_path):
    write(tmp_path, "uv.lock", "")
    write(tmp_path, "pyproject.toml", "")
    with pytest.raises(RuntimeSelectionError, match="No Python version was specified"):
        runtime.select_stack(tmp_path)
    write(tmp_path, "runtime.txt", "python-3.11")
    with pytest.raises(
        RuntimeSelectionError, match="runtime.txt file isn't supported when using uv"
    ):
        runtime.select_stack(tmp_path)
    (tmp_path / "runtime.txt").unlink()
    write(tmp_path, ".python-version", "3.11\n")
    assert runtime.select_stack(tmp_path).stack.suite == "bookworm"


def test_no_version_file_announces_the_default(tmp_path):
    write(tmp_path, "requirements.txt", "")
    assert runtime.select_stack(tmp_path).announcement == (
        "No Python version was specified. Using the default: Python 3.13"
    )


@pytest.mark.parametrize(
    ("name", "text", "where"),
    [
        ("runtime.txt", "3.11", "runtime.txt:1"),
        ("runtime.txt", "\n\npython3.11", "runtime.txt:3"),
        ("runtime.txt", "", "runtime.txt: empty"),
        (".python-version", "python-3.11", ".python-version:1"),
        (".python-version", "3.11\n3.12\n", ".python-version:2: names more than one"),
    ],
)
def test_malformed_version_files_name_file_and_line(tmp_path, name, text, where):
    write(tmp_path, name, text)
    with pytest.raises(RuntimeSelectionError, match=where):
        runtime.select_stack(tmp_path)


@pytest.mark.parametrize(
    ("files", "manager"),
    [
        (["requirements.txt"], "pip"),
        (["Pipfile", "Pipfile.lock"], "pipenv"),
        (["pyproject.toml", "poetry.lock"], "poetry"),
        (["pyproject.toml", "uv.lock"], "uv"),
        (["requirements.txt", "pyproject.toml"], "pip"),  # pyproject.toml alone names no manager
    ],
)
def test_package_manager_detection(tmp_path, files, manager):
    for name in files:
        write(tmp_path, name, "")
    assert runtime.package_manager(tmp_path) == manager


def test_an_app_without_a_package_manager_file_is_refused_in_herokus_words(tmp_path):
    write(tmp_path, "app.py", "")
    (tmp_path / "static").mkdir()
    with pytest.raises(RuntimeSelectionError) as error:
        runtime.package_manager(tmp_path)
    message = str(error.value)
    assert "Couldn't find any supported Python package manager files." in message
    assert "'Pipfile.lock', 'poetry.lock' or 'uv.lock'" in message
    assert "contains:\n\napp.py\nstatic/\n" in message
    assert "create an empty 'requirements.txt' file" in message


@pytest.mark.parametrize(
    ("files", "message"),
    [
        (["Pipfile"], "Pipfile: found without Pipfile.lock"),
        (["requirements.txt", "poetry.lock"], "several package manager files"),
        (["Pipfile", "Pipfile.lock", "uv.lock"], r"\(Pipfile.lock, uv.lock\); keep exactly one"),
        (["Pipfile.lock"], "Pipfile.lock: found without Pipfile"),
        (["poetry.lock"], "poetry.lock: found without pyproject.toml"),
        (["uv.lock"], "uv.lock: found without pyproject.toml"),
    ],
)
def test_ambiguous_or_incomplete_package_managers_are_clear_errors(tmp_path, files, message):
    for name in files:
        write(tmp_path, name, "")
    with pytest.raises(RuntimeSelectionError, match=message):
        runtime.package_manager(tmp_path)
