"""heroku.yml apps bring their own Dockerfiles: built on the real engine, cached by context."""

from __future__ import annotations

import io
import textwrap
import uuid
from pathlib import Path

import pytest

from dynosim import container_build, herokuyml, runtime, stack
from dynosim.docker import images as engine_images
from dynosim.errors import BuildError

RUN_IMAGE = runtime.stack_by_suite("bookworm").run_image


@pytest.fixture(scope="module")
def bookworm(docker_client):
    stack.ensure(runtime.stack_by_suite("bookworm"), print)


@pytest.fixture
def app_name(docker_client, bookworm):
    """A fresh app name; every image labelled with it is removed afterwards."""
    name = f"yml-{uuid.uuid4().hex[:8]}"
    yield name
    for image in docker_client.images.list(filters={"label": f"dynosim.image.app={name}"}):
        docker_client.images.remove(image.id, force=True)


def make_app(folder: Path, heroku_yml: str, **files: str) -> Path:
    for name, text in {"heroku.yml": heroku_yml, **files}.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return folder


WEB_DOCKERFILE = f"""\
    FROM {RUN_IMAGE}
    ARG GREETING=unset
    RUN echo "$GREETING" > /greeting
    COPY . /app
    USER dyno
    CMD ["cat", "/greeting"]
"""
WORKER_DOCKERFILE = f"""\
    FROM {RUN_IMAGE}
    COPY . /srv
    CMD ["ls", "-A", "/srv"]
"""
HEROKU_YML = """\
    build:
      docker: {web: Dockerfile, clock: Dockerfile, worker: worker/Dockerfile}
      config: {GREETING: hello from heroku.yml}
    run:
      clock: echo tick
"""


def build(app_name, app_dir):
    lines: list[str] = []
    manifest = herokuyml.load(app_dir)
    images = container_build.build_images(app_name, app_dir, manifest, lines.append)
    return images, lines


def run(docker_client, image: str) -> str:
    return docker_client.containers.run(image, remove=True).decode().strip()


def test_images_are_built_once_per_dockerfile_then_reused(docker_client, app_name, tmp_path):
    app_dir = make_app(
        tmp_path / "app",
        HEROKU_YML,
        **{
            "Dockerfile": WEB_DOCKERFILE,
            "app.py": "print('web')\n",
            ".dockerignore": "worker\n",  # else the web context (the app folder) holds worker/
            "worker/Dockerfile": WORKER_DOCKERFILE,
            "worker/job.py": "print('job')\n",
            "worker/.dockerignore": "# logs stay home\n*.log\n",
            "worker/debug.log": "noise\n",
        },
    )
    images, lines = build(app_name, app_dir)

    assert list(images) == ["web", "clock", "worker"]
    assert images["web"] == images["clock"]  # one Dockerfile, one image
    assert images["web"].tag.startswith(f"dynosim/app-{app_name}-web:")
    assert images["worker"].tag.startswith(f"dynosim/app-{app_name}-worker:")
    assert not any(image.cached for image in images.values())
    assert [line for line in lines if line.startswith("Building")] == [
        f"Building web, clock from Dockerfile (4 files) into {images['web'].tag}",
        f"Building worker from worker/Dockerfile (3 files) into {images['worker'].tag}",
    ]
    assert any(line.startswith("-----> [") and "RUN echo" in line for line in lines), lines
    for image in images.values():
        labels = docker_client.images.get(image.id).labels
        assert labels["dynosim.image"] == "app"
        assert labels["dynosim.image.app"] == app_name

    # build.config reached the build as an ARG; the worker's context is its own folder
    assert run(docker_client, images["web"].id) == "hello from heroku.yml"
    assert run(docker_client, images["worker"].id).split() == [
        ".dockerignore",
        "Dockerfile",
        "job.py",
    ]
    assert engine_images.image_user(images["web"].id) == "dyno"
    assert engine_images.image_user(images["worker"].id) is None

    again, lines = build(app_name, app_dir)
    assert {key: image.id for key, image in again.items()} == {
        key: image.id for key, image in images.items()
    }
    assert all(image.cached for image in again.values())
    assert not any(line.startswith("Building") for line in lines), lines
    assert sum("Source unchanged" in line for line in lines) == 2

    (app_dir / "worker" / "job.py").write_text("print('job v2')\n")
    (app_dir / "worker" / "debug.log").write_text("ignored, so no rebuild for it\n")
    changed, lines = build(app_name, app_dir)
    assert changed["web"].cached and changed["web"].id == images["web"].id
    assert not changed["worker"].cached and changed["worker"].id != images["worker"].id


def test_a_failing_run_step_is_a_build_error_with_step_and_tail(docker_client, app_name, tmp_path):
    app_dir = make_app(
        tmp_path / "broken",
        "build: {docker: {web: Dockerfile}}\n",
        Dockerfile=f"FROM {RUN_IMAGE}\nRUN echo about to fail-{app_name} && exit 3\n",
    )
    with pytest.raises(BuildError) as caught:
        build(app_name, app_dir)
    assert str(caught.value).startswith(f"build of {app_name} (Dockerfile) failed: ")
    assert "returned a non-zero code: 3" in str(caught.value)
    assert caught.value.step == f"RUN echo about to fail-{app_name} && exit 3"
    assert f"about to fail-{app_name}" in caught.value.tail
    assert docker_client.images.list(filters={"label": f"dynosim.image.app={app_name}"}) == []


def test_a_dockerfile_that_a_push_would_not_send_is_an_error(app_name, tmp_path):
    app_dir = make_app(
        tmp_path / "ignored",
        "build: {docker: {web: Dockerfile}}\n",
        Dockerfile=f"FROM {RUN_IMAGE}\n",
        **{".gitignore": "Dockerfile\n"},
    )
    with pytest.raises(BuildError, match="Dockerfile: not among the files a git push would send"):
        build(app_name, app_dir)


@pytest.mark.parametrize(
    ("user_lines", "expected"),
    [
        ("RUN useradd -o -u 0 -g 0 -M admin\nUSER admin", None),  # root by another name
        ("USER 0:0", None),
        ("USER 1000", "1000"),
        ("USER dyno:dyno", "dyno:dyno"),
    ],
)
def test_runs_as_root_is_judged_by_uid(docker_client, app_name, user_lines, expected):
    dockerfile = f"FROM {RUN_IMAGE}\n{user_lines}\n"
    image, _ = docker_client.images.build(
        fileobj=io.BytesIO(dockerfile.encode()), labels={"dynosim.image.app": app_name}, rm=True
    )
    assert engine_images.image_user(image.id) == expected
