"""Pure parts of the Heroku Python buildpack behaviour: what each package manager's build looks
like, where config vars and the app go, Heroku's step lines, WEB_CONCURRENCY per dyno size."""

import datetime as dt
import io
import json
import tarfile
from pathlib import Path

import pytest

from dynosim import build, formation
from dynosim.docker import dynos
from dynosim.store import Release

PIPFILE_LOCK = {
    "_meta": {"requires": {"python_version": "3.11"}},
    "default": {"flask": {"version": "==3.1.3"}},
}


def app(folder, manager, **files):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "Procfile").write_text("web: uwsgi uwsgi.ini\n")
    (folder / "app.py").write_text("app = None\n")
    manager_files = {
        "pip": {"requirements.txt": "flask\n"},
        "pipenv": {
            "Pipfile": "[packages]\nflask = '*'\n",
            "Pipfile.lock": json.dumps(PIPFILE_LOCK),
        },
        "poetry": {"pyproject.toml": "[project]\n", "poetry.lock": '[[package]]\nname = "flask"\n'},
        "uv": {"pyproject.toml": "[project]\n", "uv.lock": '[[package]]\nname = "flask"\n'},
    }[manager]
    for name, text in {**manager_files, **files}.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)
    return folder


@pytest.fixture(autouse=True)
def home(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("DYNOSIM_HOME", str(tmp_path_factory.mktemp("home")))


def plan(folder, config=None):
    return build.plan(
        "demo",
        folder,
        build_image="b:1",
        run_image="r:1",
        settings=build.HostSettings(),
        config=config,
    )


def members(result):
    with tarfile.open(fileobj=io.BytesIO(result.context)) as context:
        return {m.name: context.extractfile(m).read() for m in context if m.isfile()}


def dockerfile(result):
    return members(result)["Dockerfile"].decode()


def stages(text):
    build_stage, run_stage = text.split("\nFROM r:1\n")
    return build_stage, run_stage


@pytest.mark.parametrize(
    ("manager", "deps", "tool", "install", "line"),
    [
        ("pip", ["requirements.txt"], None, "pip install -r /tmp/dependencies/requirements.txt",
         "Installing dependencies using 'pip install -r requirements.txt'"),
        ("pipenv", ["Pipfile", "Pipfile.lock"], "pipenv==2025.0.4",
         "cd /tmp/dependencies && /opt/pipenv/bin/pipenv install --deploy",
         "Installing dependencies using 'pipenv install --deploy'"),
        ("poetry", ["poetry.lock", "pyproject.toml"], "poetry==2.2.1",
         "/opt/poetry/bin/poetry export --only main",
         "Installing dependencies using 'poetry export --only main' and 'pip install'"),
        ("uv", ["pyproject.toml", "uv.lock"], "uv==0.13.9",
         "/opt/uv/bin/uv sync --locked --no-default-groups --no-install-project --inexact",
         "Installing dependencies using 'uv sync --locked --no-default-groups'"),
    ],
)  # fmt: skip
def test_each_manager_installs_from_its_own_files_with_its_pinned_tool_in_the_build_stage(
    tmp_path, manager, deps, tool, install, line
):
    result = plan(app(tmp_path, manager, **{"app.py": "app = 1\n"}))
    assert result.manager == manager
    assert build.dependency_files(tmp_path, manager) == deps
    assert sorted(n for n in members(result) if n.startswith("dependencies/")) == [
        f"dependencies/{d}" for d in deps
    ]
    build_stage, run_stage = stages(dockerfile(result))
    assert install in build_stage
    assert build_stage.index("COPY dependencies/") < build_stage.index(install)
    assert "COPY app/" not in build_stage  # no hooks, no Django: the app goes straight to run
    assert "COPY --chown=dyno:dyno app/ /app/" in run_stage
    assert line in result.headlines.values()
    for instruction in result.headlines:  # each announced step is in the Dockerfile as written
        assert f"\n{instruction}\n" in dockerfile(result)
    if tool:
        assert tool in build_stage
        assert f"/opt/{manager}" not in run_stage or manager == "pipenv"
        assert any(h.startswith(("Installing Pipenv", "Installing Poetry", "Installing uv"))
                   for h in result.headlines.values())  # fmt: skip


def test_pipenv_stays_in_the_run_image_for_pipenv_run_procfiles(tmp_path):
    _, run_stage = stages(dockerfile(plan(app(tmp_path, "pipenv"))))
    assert "COPY --from=build /opt/pipenv /opt/pipenv" in run_stage
    assert "PIPENV_SYSTEM=1" in run_stage
    assert ":/opt/pipenv/bin " in run_stage


def test_a_code_only_change_keeps_the_dependency_context_and_changes_the_hash(tmp_path):
    folder = app(tmp_path, "uv")
    before = plan(folder)
    (folder / "app.py").write_text("app = 2\n")
    after = plan(folder)
    assert after.source_hash != before.source_hash
    assert dockerfile(after) == dockerfile(before)


@pytest.mark.parametrize(
    ("lock", "manager", "brings"),
    [
        ('name = "uwsgi"\n', "uv", True),
        ('name = "pyuwsgi"\n', "poetry", True),
        ('name = "flask"\n', "uv", False),
        ('name = "uwsgitop"\n', "poetry", False),
    ],
)
def test_uwsgi_in_a_lock_file_is_the_apps_own(tmp_path, lock, manager, brings):
    app(tmp_path, manager, **{f"{manager}.lock": f"[[package]]\n{lock}"})
    assert (
        build.brings_uwsgi(tmp_path, manager, build.dependency_files(tmp_path, manager)) is brings
    )


def test_uwsgi_in_pipfile_lock_is_the_apps_own(tmp_path):
    lock = {**PIPFILE_LOCK, "default": {"uWSGI": {"version": "==2.0.28"}}}
    app(tmp_path, "pipenv", **{"Pipfile.lock": json.dumps(lock)})
    assert "pyuwsgi" not in dockerfile(plan(tmp_path))


def test_django_and_hooks_run_in_the_build_stage_with_config_vars_as_a_secret(tmp_path):
    folder = app(
        tmp_path,
        "pip",
        **{"manage.py": "", "bin/post_compile": "echo hi\n", "mysite/settings.py": ""},
    )
    config = {"SECRET_KEY": "s3cr3t", "PATH": "/evil", "PYTHONHOME": "/x", "PIP_INDEX_URL": "u"}
    result = plan(folder, config)
    build_stage, run_stage = stages(dockerfile(result))
    # Heroku hides PATH, PYTHONHOME, ...
    assert result.secrets == {"config": {"SECRET_KEY": "s3cr3t"}}
    assert "ARG" not in build_stage + run_stage  # build args stay in image metadata
    assert "SECRET_KEY" not in build_stage + run_stage
    assert "s3cr3t" not in build_stage  # values are a secret, never in the Dockerfile
    mounted = "RUN --mount=type=secret,id=config . /run/secrets/config && /opt/dynosim/build-step"
    order = [
        "COPY dependencies/",
        "pip install -r /tmp/dependencies/requirements.txt",
        "COPY app/ /app/",
        f"{mounted} collectstatic  # secrets: config=",
        f"{mounted} hook post_compile  # secrets: config=",
    ]
    dependency_step = next(line for line in build_stage.splitlines() if "pip install -r" in line)
    assert "secret" not in dependency_step  # only the steps that read config vars see them
    assert [build_stage.index(step) for step in order] == sorted(
        build_stage.index(step) for step in order
    )
    assert "COPY --from=build --chown=dyno:dyno /app/ /app/" in run_stage
    assert "COPY --chown=dyno:dyno app/" not in run_stage
    assert "gcc" not in run_stage and "build-step" not in run_stage
    assert "s3cr3t" not in repr(result)


def test_pre_compile_runs_before_the_dependencies_are_installed(tmp_path):
    folder = app(tmp_path, "uv", **{"bin/pre_compile": "echo hi\n"})
    build_stage, _ = stages(dockerfile(plan(folder, {"TOKEN": "t"})))
    hook = build_stage.index("/run/secrets/config && /opt/dynosim/build-step hook pre_compile")
    assert build_stage.index("COPY app/ /app/") < hook
    assert hook < build_stage.index("cd /app && /opt/uv/bin/uv sync")
    assert "COPY dependencies/" not in build_stage  # the hook may change them


def test_config_vars_change_the_hash_only_when_a_build_step_can_read_them(tmp_path):
    plain = app(tmp_path / "plain", "pip")
    assert plan(plain, {"A": "1"}).source_hash == plan(plain, {"A": "2"}).source_hash
    assert plan(plain, {"A": "1"}).secrets == {}
    django = app(tmp_path / "django", "pip", **{"manage.py": ""})
    assert plan(django, {"A": "1"}).source_hash != plan(django, {"A": "2"}).source_hash
    # a manage.py deeper than Heroku looks (three levels) is not Django's
    deep = app(tmp_path / "deep", "pip", **{"a/b/c/manage.py": ""})
    assert "build-step collectstatic" not in dockerfile(plan(deep))


def show(lines, headlines=None):
    shown = []
    printer = build.buildkit.Printer(shown.append, headlines)
    for line in lines:
        printer.line(line + "\n")
    printer.finish()
    return shown, printer


PIP_STEP = (
    "RUN --mount=type=secret,id=pip . /run/secrets/pip && pip install -r r.txt  # secrets: pip=ab"
)
COLLECTSTATIC = (
    "RUN --mount=type=secret,id=pip --mount=type=secret,id=config . /run/secrets/pip"
    " && . /run/secrets/config && /opt/dynosim/build-step collectstatic"
    "  # secrets: pip=ab,config=cd"
)


def test_build_output_uses_herokus_step_lines_and_hides_the_docker_steps():
    headlines = {"RUN pip install -r r.txt": "Installing dependencies using 'pip install'"}
    shown, printer = show(
        [
            "#1 [internal] load remote build context",
            "#1 DONE 0.0s",
            "#4 [build 1/4] FROM docker.io/dynosim/stack-bookworm:build-3",
            "#4 CACHED",
            f"#5 [build 2/4] {PIP_STEP}",
            "#5 sha256:e0c8aa003d9e029104f88950d789850a863b56a97e059c9127ebb7051e8d0609",
            "#5 CACHED",
            f"#6 [build 3/4] {COLLECTSTATIC}",
            "#6 0.215 -----> $ python manage.py collectstatic --noinput",
            "#6 0.216 Traceback (most recent call last):",
            "#6 0.300  !     Error: Unable to generate Django static files.",
            "#6 0.301 Downloading 10%\r Downloading 100%",
            "#6 ERROR: executor failed running [/bin/sh -c . /run/secrets/pip]: exit code: 1",
            "------",
            " > [build 3/4] RUN ...:",
            "------",
        ],
        headlines,
    )
    assert shown == [
        "-----> Installing dependencies using 'pip install'",
        "       (cached)",
        "-----> $ python manage.py collectstatic --noinput",
        "       Traceback (most recent call last):",
        " !     Error: Unable to generate Django static files.",
        "        Downloading 100%",
    ]
    error = printer.error("build of demo failed")
    assert str(error) == "build of demo failed: the step returned a non-zero code: 1"
    assert error.step == "RUN /opt/dynosim/build-step collectstatic"
    assert error.tail[0] == "-----> $ python manage.py collectstatic --noinput"


def test_interleaved_steps_are_printed_one_after_the_other():
    shown, _ = show(
        [
            "#5 [build 2/3] RUN echo one",
            "#6 [stage-1 2/3] RUN echo run stage",
            "#6 0.1 run stage",
            "#5 0.1 one",
            "#5 [build 2/3] RUN echo one",
            "#5 0.2 more",
            "#5 DONE 0.3s",
            "#6 DONE 0.2s",
            "#7 [stage-1 3/3] COPY --from=build /x /y",
            "#7 CACHED",
        ]
    )
    assert shown == [
        "-----> [build 2/3] RUN echo one",
        "       one",
        "       more",
        "-----> [stage-1 2/3] RUN echo run stage",
        "       run stage",
        "-----> [stage-1 3/3] COPY --from=build /x /y",
        "       (cached)",
    ]


def test_without_headlines_every_step_is_numbered_and_metadata_steps_hidden():
    shown, printer = show(
        [
            "#2 [1/3] FROM docker.io/library/python:3.12",
            "#3 [2/3] COPY app/ /app/",
            "#4 [ 3/10] WORKDIR /app",
            "#6 [ 4/10] RUN make",
            "#5 exporting to image",
            "#5 DONE 0.1s",
        ]
    )
    assert shown == [
        "-----> [1/3] FROM python:3.12",
        "-----> [2/3] COPY app/ /app/",
        "-----> [4/10] RUN make",
    ]
    assert str(printer.error("failed")) == "failed: the build did not finish"


def test_an_error_outside_a_step_is_the_reason():
    _, printer = show(
        [
            "#1 [internal] load remote build context",
            "failed to solve with frontend dockerfile.v0: failed to create LLB definition:"
            " dockerfile parse error line 2: unknown instruction: NOPE",
        ]
    )
    error = printer.error("build of demo failed")
    assert str(error).endswith("dockerfile parse error line 2: unknown instruction: NOPE")
    assert error.step is None


RELEASE = Release(
    app="demo",
    version=1,
    image="sha256:x",
    source_hash="x",
    description="Deploy x",
    process_types={"web": "gunicorn mysite.wsgi"},
    config={},
    created_at=dt.datetime(2026, 11, 23, tzinfo=dt.UTC),
)


@pytest.mark.parametrize(
    ("size", "concurrency", "ram"),
    [
        ("Eco", "2", "512"),
        ("Basic", "2", "512"),
        ("Standard-1X", "2", "512"),
        ("Standard-2X", "4", "1024"),
        ("Performance-M", "5", "2560"),
        ("Performance-L", "17", "14336"),
    ],
)
def test_web_concurrency_follows_the_dyno_size_as_herokus_python_buildpack_sets_it(
    size, concurrency, ram
):
    env = dynos.environment(RELEASE, "web.1", size_name=formation.size(size).name)
    assert (env["WEB_CONCURRENCY"], env["DYNO_RAM"]) == (concurrency, ram)
    assert env["WEB_CONCURRENCY_SET_BY"] == "heroku/python"


def test_the_app_or_a_one_off_may_set_web_concurrency_itself():
    configured = Release(**{**RELEASE.__dict__, "config": {"WEB_CONCURRENCY": "9"}})
    env = dynos.environment(configured, "web.1", size_name="Standard-1X")
    assert env["WEB_CONCURRENCY"] == "9" and "WEB_CONCURRENCY_SET_BY" not in env
    env = dynos.environment(RELEASE, "run.1234", {"WEB_CONCURRENCY": "1"}, size_name="Standard-2X")
    assert env["WEB_CONCURRENCY"] == "1"
    assert (
        dynos.environment(RELEASE, "web.1", base={"WEB_CONCURRENCY": "3"}, size_name="Basic")[
            "WEB_CONCURRENCY"
        ]
        == "3"
    )


def test_images_of_the_apps_own_dockerfiles_get_no_buildpack_defaults():
    container = Release(**{**RELEASE.__dict__, "images": {"web": "sha256:own"}})
    assert "WEB_CONCURRENCY" not in dynos.environment(container, "web.1", size_name="Standard-1X")


#: Representative apps, each as (manager, files, host pip settings and CA, config vars); the
#: Dockerfile, Heroku's step lines and the context listing of each are pinned in tests/unit/recipes.
SHAPES = {
    "flask-pip": (
        "pip",
        {"requirements.txt": "-r base.txt\nflask\n", "base.txt": "-c constraints.txt\nrequests\n",
         "constraints.txt": "requests<3\n"},
        True,
        None,
    ),
    "django-collectstatic": (
        "pip",
        {"requirements.txt": "django\nuWSGI==2.0.28\n", "manage.py": "", "mysite/settings.py": "",
         "bin/post_compile": "echo hi\n"},
        False,
        {"SECRET_KEY": "s3cr3t", "PATH": "/evil"},
    ),
    "uv-pre-compile": ("uv", {"bin/pre_compile": "echo hi\n"}, False, {"TOKEN": "t"}),
    "poetry": ("poetry", {}, True, None),
    "pipenv": ("pipenv", {}, False, {"UNUSED": "x"}),
}  # fmt: skip
PINNED = Path(__file__).parent / "recipes"


def pinned_build(folder, shape, monkeypatch):
    """The Dockerfile, headlines and context listing of `shape`'s plan, as one text."""
    manager, files, host, config = SHAPES[shape]
    app(folder, manager, **files)
    monkeypatch.setattr(build, "build_key", lambda: b"k" * 32)  # digests that do not vary
    settings = build.HostSettings()
    if host:
        (folder.parent / "ca.pem").write_text("CERT\n")
        settings = build.HostSettings(
            {"PIP_INDEX_URL": "https://pypi.test/simple"}, folder.parent / "ca.pem"
        )
    result = build.plan(
        "demo", folder, build_image="b:1", run_image="r:1", settings=settings, config=config
    )
    with tarfile.open(fileobj=io.BytesIO(result.context)) as context:
        # dynosim's own runtime files may change without the recipe changing: not their size
        sizes = {m.name: "-" if m.name.startswith("runtime/") else m.size for m in context}
        listing = [f"{m.name} {m.type.decode()} {m.mode:o} {sizes[m.name]}" for m in context]
    headlines = [f"{instruction}\n -> {line!r}" for instruction, line in result.headlines.items()]
    return "\n".join(
        [
            dockerfile(result),
            "==== headlines ====", *headlines,
            "==== context ====", *listing,
            "==== plan ====", f"manager={result.manager} files={result.files}",
            f"secrets={sorted((k, sorted(v)) for k, v in result.secrets.items())}", "",
        ]
    )  # fmt: skip


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_the_recipe_of_each_app_shape_is_pinned_byte_for_byte(tmp_path, monkeypatch, shape):
    expected = (PINNED / f"{shape}.txt").read_text()
    assert pinned_build(tmp_path / "app", shape, monkeypatch) == expected
