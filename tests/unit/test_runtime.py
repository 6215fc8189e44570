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


@pytest.mark.parametrize(
    ("version", "suite"),
    [("3.7", "bullseye"), ("3.8.10", "bullseye"), ("3.10", "bookworm"), ("3.12", "trixie")],
)
def test_missing_python_gets_the_nearest_newer_with_a_warning(tmp_path, version, suite):
    selection = runtime.select_stack(write(tmp_path, "runtime.txt", f"python-{version}"))
    assert selection.stack.suite == suite
    assert f"asks for Python {version}; using the nearest newer" in selection.warning


def test_strict_runtime_refuses_a_near_match(tmp_path):
    write(tmp_path, "runtime.txt", "python-3.8")
    with pytest.raises(RuntimeSelectionError, match=r"runtime.txt:1: .*3.8 exactly"):
        runtime.select_stack(tmp_path, strict=True)


def test_python_newer_than_every_stack_is_an_error(tmp_path):
    write(tmp_path, "runtime.txt", "python-3.99")
    with pytest.raises(RuntimeSelectionError, match="no stack provides Python 3.99"):
        runtime.select_stack(tmp_path)


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


def test_package_manager_detection(tmp_path):
    assert runtime.package_manager(tmp_path) is None
    write(tmp_path, "requirements.txt", "flask\n")
    assert runtime.package_manager(tmp_path) == "pip"


@pytest.mark.parametrize(
    ("files", "message"),
    [
        (["Pipfile"], "Pipfile: found without Pipfile.lock"),
        (["requirements.txt", "poetry.lock"], "several package manager files"),
        (["poetry.lock"], "poetry is detected but not supported by dynosim yet"),
        (["uv.lock"], "uv export --format requirements-txt"),
        (["Pipfile", "Pipfile.lock"], "pipenv requirements > requirements.txt"),
    ],
)
def test_unsupported_or_ambiguous_package_managers_are_clear_errors(tmp_path, files, message):
    for name in files:
        write(tmp_path, name, "")
    with pytest.raises(RuntimeSelectionError, match=message):
        runtime.package_manager(tmp_path)
