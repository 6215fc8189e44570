import pytest

from dynosim import runtime
from dynosim.errors import RuntimeSelectionError


def write(folder, name, text):
    (folder / name).write_text(text)
    return folder


def test_no_version_file_gives_herokus_default_3_14(tmp_path):
    selection = runtime.select_stack(tmp_path)
    assert (selection.stack.suite, selection.stack.python) == ("forky", (3, 14))
    assert selection.warnings == ()


@pytest.mark.parametrize(
    ("name", "text", "suite"),
    [
        ("runtime.txt", "python-3.11\n", "bookworm"),
        ("runtime.txt", "\npython-3.13.1\n", "trixie"),
        (".python-version", "3.11\n", "bookworm"),
        (".python-version", "# pinned\n\n3.13.0\n", "trixie"),
        (".python-version", "3.14\n", "forky"),
    ],
)
def test_exact_python_picks_its_stack(tmp_path, name, text, suite):
    selection = runtime.select_stack(write(tmp_path, name, text))
    assert selection.stack.suite == suite
    deprecated = [w for w in selection.warnings if "runtime.txt file is deprecated" in w]
    assert selection.warnings == tuple(deprecated)  # nothing but runtime.txt's deprecation
    assert bool(deprecated) == (name == "runtime.txt")


def test_runtime_txt_wins_over_python_version(tmp_path):
    write(tmp_path, "runtime.txt", "python-3.11")
    write(tmp_path, ".python-version", "3.13")
    assert runtime.select_stack(tmp_path).stack.suite == "bookworm"


def test_runtime_txt_gets_herokus_deprecation_warning(tmp_path):
    selection = runtime.select_stack(write(tmp_path, "runtime.txt", "python-3.13.1"))
    assert selection.warnings == (runtime.runtime_txt_deprecation((3, 13)),)
    warning = selection.warnings[0]
    assert warning.startswith("Warning: The runtime.txt file is deprecated.\n\n")
    assert "https://devcenter.heroku.com/changelog-items/3141" in warning
    assert "Delete your runtime.txt file and create a new file" in warning
    assert "update your .python-version file so it contains exactly:\n3.13\n" in warning
    assert warning.endswith("this warning will be made an error.")


@pytest.mark.parametrize(("version", "suite"), [("3.10", "bookworm"), ("3.12.4", "trixie")])
def test_supported_python_no_stack_carries_gets_the_nearest_newer_with_a_warning(
    tmp_path, version, suite
):
    selection = runtime.select_stack(write(tmp_path, ".python-version", version))
    assert selection.stack.suite == suite
    assert selection.warnings[-1:] == (
        f"{tmp_path / '.python-version'} asks for Python {version}; no stack carries it,"
        f" using the nearest newer, {selection.stack.python_version} (stack {suite})",
    )


def test_python_3_10_gets_herokus_deprecation_warning_too(tmp_path):
    selection = runtime.select_stack(write(tmp_path, ".python-version", "3.10"))
    warning = selection.warnings[0]
    assert warning.startswith("Warning: Support for Python 3.10 is deprecated!\n\n")
    assert "will be removed from this\nbuildpack on 6th January 2027." in warning
    assert "changing the version in your .python-version file." in warning
    assert "nearest newer" in selection.warnings[1]


def test_strict_runtime_refuses_a_near_match(tmp_path):
    write(tmp_path, ".python-version", "3.10")
    with pytest.raises(RuntimeSelectionError, match=r".python-version:1: .*3.10 exactly"):
        runtime.select_stack(tmp_path, strict=True)


@pytest.mark.parametrize(
    ("name", "text", "major"),
    [
        ("runtime.txt", "python-3.7.17", "3.7"),
        (".python-version", "3.8", "3.8"),
        (".python-version", "3.9", "3.9"),
    ],
)
def test_end_of_life_python_is_refused_in_herokus_words(tmp_path, name, text, major):
    write(tmp_path, name, text)
    with pytest.raises(RuntimeSelectionError) as error:
        runtime.select_stack(tmp_path)
    message = str(error.value)
    assert "The requested Python version has reached end-of-life." in message
    assert f"Python {major} has reached its upstream end-of-life" in message
    assert (
        f"Please upgrade to at least Python 3.10 by changing the\nversion in your {name} file"
        in message
    )
    assert "upgrading all the way to Python 3.14" in message
    # a stack that carries it is how to rehearse the app anyway; none carries 3.7 or 3.8
    assert ("dynosim stack:set bullseye" in message) == (major == "3.9")


def test_end_of_life_stack_set_explicitly_builds_its_python_with_a_warning(tmp_path):
    write(tmp_path, ".python-version", "3.9")
    selection = runtime.select_stack(tmp_path, stack="bullseye")
    assert selection.stack.suite == "bullseye"
    assert selection.warnings == (runtime.end_of_life_warning(selection.stack),)
    assert "Heroku refuses to build it" in selection.warnings[0]
    assert runtime.stack_by_suite("bullseye").end_of_life
    assert not runtime.stack_by_suite("bookworm").end_of_life


@pytest.mark.parametrize(
    ("text", "stack", "message"),
    [
        (
            "3.14",
            "bookworm",
            r"\.python-version:1: the app's stack bookworm has Python 3\.11, not Python 3\.14;"
            r" the stack that carries it: forky \(Python 3\.14\)\."
            r" Set it with: dynosim stack:set forky \(or up --stack forky\)$",
        ),
        (
            "3.12",
            "forky",
            r"not Python 3\.12; the stack that has the nearest newer Python for it:"
            r" trixie \(Python 3\.13\)\. Set it with: dynosim stack:set trixie"
            r" \(or up --stack trixie\)$",
        ),
        (
            None,
            "trixie",
            r"^No Python version was specified, so the app's stack trixie has"
            r" Python 3\.13, not Heroku's default, Python 3\.14; .* forky .*\.python-version\)$",
        ),
        ("3.9", "bookworm", "The requested Python version has reached end-of-life"),
    ],
)
def test_a_stack_that_lacks_the_version_is_an_error_naming_the_stacks_that_have_it(
    tmp_path, text, stack, message
):
    if text:
        write(tmp_path, ".python-version", text)
    with pytest.raises(RuntimeSelectionError, match=message):
        runtime.select_stack(tmp_path, stack=stack)


def test_a_stack_set_that_carries_the_version_is_used(tmp_path):
    assert runtime.select_stack(tmp_path, stack="forky").stack.suite == "forky"
    write(tmp_path, ".python-version", "3.12")
    selection = runtime.select_stack(tmp_path, stack="trixie")
    assert selection.stack.suite == "trixie"
    assert "using the nearest newer, 3.13" in selection.warnings[0]
    with pytest.raises(RuntimeSelectionError, match="unknown stack 'heroku-24'; known stacks"):
        runtime.select_stack(tmp_path, stack="heroku-24")


@pytest.mark.parametrize("version", ["3.15", "4.0"])
def test_python_newer_than_heroku_supports_is_not_recognised(tmp_path, version):
    write(tmp_path, ".python-version", version)
    with pytest.raises(RuntimeSelectionError) as error:
        runtime.select_stack(tmp_path)
    assert "The requested Python version isn't recognised" in str(error.value)
    assert "(such as Python 3.14)" in str(error.value)


PIPFILE_LOCK = '{"_meta": {"requires": {%s}}, "default": {}}'


@pytest.mark.parametrize(
    ("requires", "suite", "requested"),
    [
        ('"python_version": "3.11"', "bookworm", "3.11"),
        ('"python_version": "3.11", "python_full_version": "3.13.1"', "trixie", "3.13.1"),
        ("", "forky", None),
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
    write(tmp_path, "Pipfile.lock", PIPFILE_LOCK % '"python_version": "3.14"')
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
        "No Python version was specified. Using the buildpack default: Python 3.14"
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


@pytest.mark.parametrize(
    ("stderr", "message"),
    [
        (
            ["E: Unable to locate package python3.14-venv"],
            "cannot make stack forky (Python 3.14): Debian forky no longer has package"
            " 'python3.14-venv' (the suite changed since this dynosim was made); upgrade dynosim",
        ),
        (
            ["I: running hook", "dynosim: python3 in forky is not Python 3.14: Python 3.15.0"],
            "cannot make stack forky (Python 3.14): python3 in forky is not Python 3.14:"
            " Python 3.15.0",
        ),
        (
            [
                "E: setup failed: E: apt-get -o Dir::Bin::dpkg=env --yes install"
                " -oAPT::Status-Fd=<$fd> python3.14 passwd failed",
                "E: mmdebstrap failed to run",
            ],
            "cannot make stack forky (Python 3.14): apt could not install its packages from"
            " Debian forky (python3.14, passwd); if the mirror is reachable, the suite changed"
            " since this dynosim was made (a package gone or renamed): upgrade dynosim",
        ),
        (["E: mmdebstrap failed to run"], None),
    ],
)
def test_a_changed_suite_fails_the_stack_with_a_clear_message(stderr, message):
    from dynosim import stack

    name = runtime.stack_by_suite("forky").build_image
    made = "stack forky (Python 3.14)"
    assert stack._failure(name, "forky", ["python3.14", "passwd"], stderr, made) == message


def test_moving_suites_pin_their_python_packages_by_name():
    from dynosim import stack

    build, run = stack.PINNED_PACKAGES["forky"]
    assert {"python{python}", "python{python}-venv", "python{python}-dev"} <= set(build)
    assert {"python{python}", "libpython{python}"} <= set(run)
    assert "python3" not in build + run
