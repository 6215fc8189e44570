"""Build the images a heroku.yml names, as Heroku's container stack does.

The build context of a Dockerfile is the folder that holds it: the files a git push would send
(source.select) under that folder, minus those its .dockerignore excludes. Like build.py, the
context is a deterministic tar whose hash (with the Dockerfile, target and build args) names the
image, so the same inputs are never built twice. Keys sharing a Dockerfile share one image.
"""

from __future__ import annotations

import hashlib
import posixpath
import re
from dataclasses import dataclass
from pathlib import Path

from . import source
from .build import HostSettings, Image, _Context, stream_build
from .docker import dockerignore, images
from .errors import BuildError
from .herokuyml import HerokuYml
from .progress import Progress


@dataclass(frozen=True)
class Plan:
    """One image to build: the keys that use it and its context, computed without Docker."""

    keys: tuple[str, ...]
    dockerfile: str  # relative to the app
    target: str | None
    context: bytes
    files: int
    source_hash: str

    def tag(self, app: str, key: str) -> str:
        repository = re.sub(r"[^a-z0-9]+", "-", key.lower()).strip("-") or "image"
        return f"dynosim/app-{app}-{repository}:{self.source_hash[:12]}"


def plans(app_dir: Path, manifest: HerokuYml, buildargs: dict[str, str]) -> list[Plan]:
    """One plan per distinct (Dockerfile, target), in the order of build.docker."""
    groups: dict[tuple[str, str | None], list[str]] = {}
    for key, dockerfile in manifest.dockerfiles.items():
        groups.setdefault((dockerfile, manifest.targets.get(key)), []).append(key)
    files = source.select(app_dir)
    result = []
    for (dockerfile, target), keys in groups.items():
        context, count = _context(app_dir, files, dockerfile)
        digest = hashlib.sha256(context)
        digest.update(repr((dockerfile, target, sorted(buildargs.items()))).encode())
        result.append(Plan(tuple(keys), dockerfile, target, context, count, digest.hexdigest()))
    return result


def _context(app_dir: Path, files: list[str], dockerfile: str) -> tuple[bytes, int]:
    """The tar of the Dockerfile's folder (selected files, minus .dockerignore) and its size."""
    folder, name = posixpath.split(dockerfile)
    prefix = f"{folder}/" if folder else ""
    names = [f[len(prefix) :] for f in files if f.startswith(prefix)]
    if name not in names:
        raise BuildError(
            f"{dockerfile}: not among the files a git push would send"
            " (git add it, or check .gitignore / .slugignore)"
        )
    excluded = dockerignore.excluded(app_dir / folder)
    names = [n for n in names if n in (name, ".dockerignore") or not excluded(n)]
    context = _Context()
    for relative in names:
        context.add_file(relative, app_dir / folder / relative)
    return context.close(), len(names)


def build_images(
    app: str,
    app_dir: Path,
    manifest: HerokuYml,
    progress: Progress,
    *,
    settings: HostSettings | None = None,
    cache: bool = True,
) -> dict[str, Image]:
    """Build (or reuse) the image of every build.docker key; keys sharing a Dockerfile share one.

    Build args: heroku.yml's build.config, as Heroku passes them (they are no secrets: they
    are in heroku.yml). The host's pip settings are the BuildKit secret `pip` (`RUN
    --mount=type=secret,id=pip . /run/secrets/pip && pip install …`), never build args, which
    the image's history would keep. Without `cache`, every layer is built again.
    """
    settings = settings or HostSettings.from_environ()
    buildargs = dict(manifest.build_config)
    secrets = {"pip": dict(settings.buildargs)}  # always there, so such a RUN always works
    built: dict[str, Image] = {}
    for plan in plans(Path(app_dir), manifest, buildargs):
        image = (cache and _reuse(app, plan, progress)) or _build(
            app, plan, buildargs, secrets, progress, cache
        )
        built |= dict.fromkeys(plan.keys, image)
    return {key: built[key] for key in manifest.dockerfiles}


def _reuse(app: str, plan: Plan, progress: Progress) -> Image | None:
    """The image built before from the same inputs, under any of the plan's keys."""
    for key in plan.keys:
        tag = plan.tag(app, key)
        existing = images.image_id(tag)
        if existing is None:
            continue
        progress(f"Source unchanged ({plan.source_hash[:12]}): reusing image {tag}")
        return Image(tag, existing, plan.source_hash, cached=True)
    return None


def _build(
    app: str,
    plan: Plan,
    buildargs: dict[str, str],
    secrets: dict[str, dict[str, str]],
    progress: Progress,
    cache: bool,
) -> Image:
    tag = plan.tag(app, plan.keys[0])
    progress(
        f"Building {', '.join(plan.keys)} from {plan.dockerfile} ({plan.files} files) into {tag}"
    )
    image_id = stream_build(
        progress,
        f"build of {app} ({plan.dockerfile}) failed",
        context=plan.context,
        dockerfile=posixpath.basename(plan.dockerfile),
        target=plan.target,
        tag=tag,
        buildargs=buildargs,
        secrets=secrets,
        nocache=not cache,
        labels={"dynosim.image": "app", "dynosim.image.app": app},
    )
    progress(f"Built {tag}")
    return Image(tag, image_id, plan.source_hash, cached=False)
