import textwrap

import pytest

from dynosim import herokuyml
from dynosim.errors import ManifestError
from dynosim.herokuyml import Process


@pytest.fixture
def app(tmp_path):
    """An app folder with a Dockerfile at the top and one for the worker."""
    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    (tmp_path / "worker").mkdir()
    (tmp_path / "worker" / "Dockerfile").write_text("FROM scratch\n")
    return tmp_path


def write(app, text):
    (app / "heroku.yml").write_text(textwrap.dedent(text))
    return herokuyml.load(app)


def error(app, text) -> str:
    with pytest.raises(ManifestError) as caught:
        write(app, text)
    message = str(caught.value)
    assert message.startswith(str(app / "heroku.yml"))
    return message[len(str(app / "heroku.yml")) :]


def test_no_heroku_yml_is_none(app):
    assert herokuyml.load(app) is None


def test_herokus_full_example(app):
    manifest = write(
        app,
        """
        setup:
          addons: [{plan: heroku-postgresql, as: DATABASE}]
          config: {S3_BUCKET: b}
        build:
          docker:
            web: Dockerfile
            worker: ./worker/Dockerfile
          config:
            RAILS_ENV: development
            WORKERS: 4
            DEBUG: true
            EMPTY:
        release:
          command: [./deployment-tasks.sh]
          image: worker
        run:
          web: bundle exec puma -C config/puma.rb
          worker:
            command: [python, myworker.py]
            image: worker
          clock: python clock.py
        """,
    )
    assert manifest.dockerfiles == {"web": "Dockerfile", "worker": "worker/Dockerfile"}
    assert manifest.build_config == {
        "RAILS_ENV": "development",
        "WORKERS": "4",
        "DEBUG": "true",
        "EMPTY": "",
    }
    assert manifest.processes == {
        "web": Process("bundle exec puma -C config/puma.rb", "web"),
        "worker": Process("python myworker.py", "worker"),
        "clock": Process("python clock.py", "web"),  # not in build.docker: web's image
    }
    assert list(manifest.processes) == ["web", "worker", "clock"]
    assert manifest.release == Process("./deployment-tasks.sh", "worker")
    assert len(manifest.warnings) == 1
    assert "setup is ignored by dynosim" in manifest.warnings[0]
    assert manifest.targets == {}


def test_without_run_every_image_runs_its_own_cmd(app):
    manifest = write(app, "build: {docker: {web: Dockerfile, worker: worker/Dockerfile}}\n")
    assert manifest.processes == {"web": Process(None, "web"), "worker": Process(None, "worker")}
    assert manifest.release is None
    assert manifest.build_config == {} and manifest.warnings == []


def test_command_forms_and_image_defaults(app):
    manifest = write(
        app,
        """
        build: {docker: {web: Dockerfile, worker: worker/Dockerfile}}
        release: {command: "./x.sh"}
        run:
          worker: {command: "  python w.py  "}
          web: {image: worker}
          extra: {command: [sleep, 5]}
        """,
    )
    assert manifest.release == Process("./x.sh", "web")
    assert manifest.processes == {
        "web": Process(None, "worker"),
        "worker": Process("python w.py", "worker"),
        "extra": Process("sleep 5", "web"),
    }


def test_a_shared_dockerfile_and_a_multi_stage_target(app):
    manifest = write(
        app,
        """
        build:
          docker:
            web: Dockerfile
            worker: Dockerfile
            jobs: {dockerfile: Dockerfile, target: builder}
        """,
    )
    assert manifest.dockerfiles == {
        "web": "Dockerfile",
        "worker": "Dockerfile",
        "jobs": "Dockerfile",
    }
    assert manifest.targets == {"jobs": "builder"}


def test_a_procfile_next_to_heroku_yml_is_ignored_with_a_warning(app):
    (app / "Procfile").write_text("web: x\n")
    manifest = write(app, "build: {docker: {web: Dockerfile}}\n")
    assert manifest.warnings == [f"{app / 'Procfile'}: ignored, heroku.yml says what runs"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", ": build: required: heroku.yml is empty"),
        ("- a\n", ": expected a mapping with a build section"),
        ("biuld: {}\n", ": biuld: unknown key; expected setup, build, release, run"),
        ("run: {web: x}\n", ": build: required"),
        ("build: [Dockerfile]\n", ": build: expected a mapping with docker (and config)"),
        ("build: {config: {A: b}}\n", ": build.docker: expected a mapping of process types"),
        ("build: {docker: {}}\n", ": build.docker: names no process type"),
        ("build: {docker: Dockerfile}\n", ": build.docker: expected a mapping"),
        ("build: {docker: {web: Dockerfile}, languages: [ruby]}\n", ": build.languages: unknown"),
        ("build: {docker: {web: }}\n", ": build.docker.web: expected a path to a Dockerfile"),
        ("build: {docker: {web: 3}}\n", ": build.docker.web: expected a path to a Dockerfile"),
        ("build: {docker: {web: ''}}\n", ": build.docker.web: expected a path to a Dockerfile"),
        ("build: {docker: {web: Nope}}\n", ": build.docker.web: Nope not found in the app"),
        ("build: {docker: {web: worker}}\n", ": build.docker.web: worker not found in the app"),
        (
            "build: {docker: {web: ../Dockerfile}}\n",
            ": build.docker.web: '../Dockerfile' is outside",
        ),
        ("build: {docker: {web: /etc/hosts}}\n", ": build.docker.web: '/etc/hosts' is outside"),
        ("build: {docker: {web: {target: x}}}\n", ": build.docker.web.dockerfile: expected a path"),
        (
            "build: {docker: {web: {dockerfile: Dockerfile, target: ''}}}\n",
            ": build.docker.web.target: expected the name of a build stage",
        ),
        (
            "build: {docker: {web: {dockerfile: Dockerfile, context: .}}}\n",
            ": build.docker.web.context: unknown key; expected dockerfile, target",
        ),
        ("build: {docker: {my web: Dockerfile}}\n", "'my web' is not a valid process type"),
        (
            "build: {docker: {run: Dockerfile}}\n",
            ": build.docker.run: process type 'run' is reserved",
        ),
        ("build: {docker: {release: Dockerfile}}\n", ": build.docker.release: 'release' is not a"),
        ("build: {docker: {1: Dockerfile}}\n", ": build.docker: keys must be strings, got 1"),
        (
            "build: {docker: {web: Dockerfile}, config: {A: [1]}}\n",
            ": build.config.A: expected a string, number or boolean, got a list",
        ),
        ("build: {docker: {web: Dockerfile}, config: [A]}\n", ": build.config: expected a mapping"),
    ],
)
def test_build_errors_name_the_key_path(app, text, message):
    assert message in error(app, text)


WEB = "build: {docker: {web: Dockerfile, worker: worker/Dockerfile}}\n"
WORKER_ONLY = "build: {docker: {worker: worker/Dockerfile}}\n"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (WEB + "run: [a]\n", ": run: expected a mapping of process types to commands, got a list"),
        (WEB + "run: {worker: }\n", ": run.worker: expected a command (a string or a list"),
        (WEB + "run: {worker: '  '}\n", ": run.worker: empty command"),
        (WEB + "run: {worker: []}\n", ": run.worker: empty command"),
        (WEB + "run: {worker: {command: []}}\n", ": run.worker.command: empty command"),
        (WEB + "run: {worker: {command: [a, {b: c}]}}\n", ": run.worker.command[1]: expected a"),
        (WEB + "run: {worker: {command: [a, true]}}\n", ": run.worker.command[1]: expected a"),
        (WEB + "run: {worker: {command: 5}}\n", ": run.worker.command: expected a command"),
        (
            WEB + "run: {worker: {command: a, image: jobs}}\n",
            ": run.worker.image: 'jobs' is not a key of build.docker (web, worker)",
        ),
        (WEB + "run: {worker: {image: [web]}}\n", ": run.worker.image: ['web'] is not a key"),
        (WEB + "run: {worker: {cmd: a}}\n", ": run.worker.cmd: unknown key; expected command"),
        (WEB + "run: {run: a}\n", ": run.run: process type 'run' is reserved for one-off dynos"),
        (WEB + "run: {release: a}\n", ": run.release: 'release' is not a process type here"),
        (WEB + "run: {bad.type: a}\n", ": run.bad.type: 'bad.type' is not a valid process type"),
        (WORKER_ONLY + "run: {clock: a}\n", ": run.clock: no image: build.docker has no web"),
        (WEB + "release: ./x.sh\n", ": release: expected a mapping with command (and image)"),
        (WEB + "release: {image: web}\n", ": release.command: required"),
        (WEB + "release: {command: ''}\n", ": release.command: empty command"),
        (WEB + "release: {command: a, when: b}\n", ": release.when: unknown key"),
        (WEB + "release: {command: a, image: db}\n", ": release.image: 'db' is not a key"),
        (WORKER_ONLY + "release: {command: a}\n", ": release.image: no image: build.docker has"),
    ],
)
def test_run_and_release_errors_name_the_key_path(app, text, message):
    assert message in error(app, text)


def test_a_dockerfile_symlinked_out_of_the_app_is_outside(app, tmp_path_factory):
    outside = tmp_path_factory.mktemp("elsewhere") / "Dockerfile"
    outside.write_text("FROM scratch\n")
    (app / "Linked").symlink_to(outside)
    assert ": build.docker.web: 'Linked' is outside the app folder" in error(
        app, "build: {docker: {web: Linked}}\n"
    )


@pytest.mark.parametrize(
    ("text", "line", "reason"),
    [
        ("build:\n  docker:\n    web: Dockerfile\n   bad: [\n", 4, ""),
        (
            "build: {docker: {web: Dockerfile}}\nrun:\n  web: a\n  web: b\n",
            4,
            "duplicate key 'web'",
        ),
        ("build:\n\tdocker: {}\n", 2, "found character '\\t' that cannot start any token"),
    ],
)
def test_invalid_yaml_names_the_line(app, text, line, reason):
    message = error(app, text)
    assert message.startswith(f":{line}: invalid YAML (")
    assert reason in message


def test_yaml_merge_keys_may_be_overridden(app):
    manifest = write(
        app,
        """
        setup:
          config: &common {A: "1", B: "2"}
        build:
          docker: {web: Dockerfile}
          config:
            <<: *common
            B: three
        """,
    )
    assert manifest.build_config == {"A": "1", "B": "three"}


def test_not_utf8_names_the_line(app):
    (app / "heroku.yml").write_bytes(b"build:\n  docker: {web: \xff}\n")
    with pytest.raises(ManifestError, match=r"heroku\.yml:2: not valid UTF-8 text"):
        herokuyml.load(app)


def test_process_types_come_from_heroku_yml_else_the_procfile(app):
    (app / "Procfile").write_text("web: gunicorn app:app\n")
    assert herokuyml.process_types(app, None) == {"web": "gunicorn app:app"}
    manifest = write(
        app,
        """\
        build: {docker: {web: Dockerfile, worker: worker/Dockerfile}}
        release: {command: [./migrate]}
        run: {web: python3 -m http.server $PORT}
        """,
    )
    assert herokuyml.process_types(app, manifest) == {
        "web": "python3 -m http.server $PORT", "worker": "", "release": "./migrate",
    }  # fmt: skip
