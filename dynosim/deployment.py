"""Deploying an app folder: build it into an image (the Python runtime, or heroku.yml's
Dockerfiles) and record a pending release, as a git push to Heroku does."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from . import appjson, build, container_build, control, herokuyml, procfile, releases, source
from .errors import ManifestError
from .formation import DEFAULT_SIZE, Entry, check_limits, size
from .progress import Progress
from .store import Release, Store


def deploy(
    store: Store,
    app: str,
    app_dir: Path,
    *,
    progress: Progress,
    base_image: str | None = None,
    strict_runtime: bool = False,
    cache: bool = True,
    stack_suite: str | None = None,
    config: Mapping[str, str] | None = None,
    prune: bool = True,
    image_name: str | None = None,
    local_env: Mapping[str, str] | None = None,
    description: str | None = None,
    home: Path | None = None,
    test: bool = False,
) -> tuple[Release, bool]:
    """Build the folder and record a pending release; (release, whether it is new). Without
    `cache`, every image layer is built again; `stack_suite` overrides the stack the runtime
    picks; `config` vars are set on the release (and seen by the build) on top of the app's;
    `prune` removes images no kept release uses (the pytest plugin manages its own);
    `image_name` names the images instead of the app (apps of one folder can share them);
    app.json's vars take their values from `config`, then `local_env` (the .env asked for).
    A git push builds a checkout of its commit: `description` names the commit, `home` is
    the app's own folder, recorded instead of `app_dir`. `test`: Heroku CI's build (the test
    dependencies too, no collectstatic).

    The app's network is made during the build by a thread that also imports the docker SDK
    (nothing before the build needs it); a failed deploy removes the network again.
    """
    manifest = herokuyml.load(app_dir)
    types = herokuyml.process_types(app_dir, manifest)
    first = store.latest_release(app) is None
    provided = {**(local_env or {}), **(config or {})}
    setup = _first_release_setup(app_dir, types, provided) if first else None
    with ThreadPoolExecutor(max_workers=1) as side:
        network = side.submit(_ensure_network, app)
        try:
            # the build sees the config vars of the release it builds on (Heroku's build does)
            base = setup[0] if setup else getattr(store.latest_release(app), "config", {})
            release_config = {**base, **(config or {})}
            built = _build(
                image_name or app, app_dir, manifest, progress, base_image, strict_runtime,
                release_config, cache, stack_suite, test,
            )  # fmt: skip
        except BaseException:
            with contextlib.suppress(Exception):
                network.result()
                if not control.is_running(app):
                    from .docker import dynos

                    dynos.remove_network(app)
            raise
    store.ensure_app(app, (home or app_dir).resolve())
    _, formation, postdeploy = setup or ({}, {}, "")
    return _record(
        store, app, built, types, release_config, formation, postdeploy, progress, prune,
        description,
    )  # fmt: skip


def _ensure_network(app: str) -> None:
    from .docker import dynos  # the SDK, imported beside the build rather than before it

    dynos.ensure_network(app)


def _record(
    store: Store,
    app: str,
    built: tuple[build.Image, dict[str, str]],
    types: dict[str, str],
    release_config: dict[str, str],
    formation: dict[str, Entry],
    postdeploy: str,
    progress: Progress,
    prune: bool,
    description: str | None = None,
) -> tuple[Release, bool]:
    """The pending release of a build, unless the current one already runs it."""
    image, images = built
    latest = store.latest_release(app)
    unchanged = latest and (latest.image, latest.images) == (image.id, images)
    if latest and unchanged and latest.process_types == types and latest.config == release_config:
        progress(f"-----> Current release {latest.name} already runs this build")
        return latest, False
    release = store.create_release(
        app,
        image=image.id,
        images=images,
        source_hash=image.source_hash,
        description=description or f"Deploy {image.source_hash[:7]}",
        process_types=types,
        config=release_config,
        postdeploy=postdeploy,
    )
    store.ensure_formation(app, [t for t in types if t != procfile.RELEASE])
    if formation:
        store.set_formation(app, formation)
    if prune:
        with contextlib.suppress(Exception):  # retention is housekeeping, never a failed deploy
            releases.prune_images(store, app)
    progress(f"-----> Released {release.name}")
    return release, True


def _first_release_setup(
    app_dir: Path, types: dict[str, str], provided: Mapping[str, str]
) -> tuple[dict[str, str], dict[str, Entry], str]:
    """What app.json gives an app's first release: config vars (`provided` values first),
    formation, postdeploy."""
    spec = appjson.load(app_dir)
    if spec is None:
        return {}, {}, ""
    config_vars = appjson.initial_config(spec, provided)
    entries = {}
    for name, (quantity, size_name) in spec.formation.items():
        if name not in types:
            raise ManifestError(f"{app_dir / 'app.json'}: formation.{name}: no such process type")
        entries[name] = Entry(name, quantity, size(size_name or DEFAULT_SIZE).name)
    check_limits(entries)
    return config_vars, entries, spec.postdeploy or ""


def _build(
    app: str,
    app_dir: Path,
    manifest: herokuyml.HerokuYml | None,
    progress: Progress,
    base_image: str | None,
    strict_runtime: bool,
    config: dict[str, str] | None = None,
    cache: bool = True,
    stack_suite: str | None = None,
    test: bool = False,
) -> tuple[build.Image, dict[str, str]]:
    """The release's default image, and the per-type images of a heroku.yml app. `config`:
    the app's config vars, which the build's hooks and collectstatic see."""
    if manifest is not None:
        for warning in manifest.warnings:
            progress(f" !     {warning}")
        built = container_build.build_images(app, app_dir, manifest, progress, cache=cache)
        images = {name: built[p.image].id for name, p in manifest.processes.items()}
        if manifest.release:
            images[procfile.RELEASE] = built[manifest.release.image].id
        default = built.get(procfile.WEB) or next(iter(built.values()))
        return default, images
    build_image, run_image, description = build.stack_images(
        app_dir, base_image=base_image, strict=strict_runtime, progress=progress, suite=stack_suite
    )
    settings = build.HostSettings.from_environ()
    for warning in settings.warnings:
        progress(f" !     {warning}")
    left_out = source.untracked(app_dir)
    if left_out:
        shown = ", ".join(left_out[:5]) + (", ..." if len(left_out) > 5 else "")
        progress(f" !     {len(left_out)} files not tracked by git are not deployed: {shown}")
    plan = build.plan(
        app,
        app_dir,
        build_image=build_image,
        run_image=run_image,
        settings=settings,
        config=config,
        test=test,
    )
    progress(f"-----> {app}: Python app on {description}")
    if test and build.compile_steps(plan.files)[1]:
        progress(
            "-----> Skipping Django collectstatic since the env var DISABLE_COLLECTSTATIC is set."
        )
    return build.build(plan, progress, cache=cache), {}
