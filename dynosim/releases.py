"""Releases as Heroku makes them: every deploy, config change and rollback is a new release vN.

A release is recorded `pending` in the store; a running `dynosim up` rolls it out (release phase,
then its dynos take over) and marks it succeeded or failed. Without a running `up`, the next one
rolls it out. Images of the newest KEEP_IMAGES releases are kept for rollbacks.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from . import config, control, control_commands
from .clock import heroku_time
from .errors import UsageError
from .store import FAILED, PENDING, Release, Store

#: Images of this many newest releases (and of the current one) are kept; older ones are removed.
KEEP_IMAGES = 10


def latest(store: Store, app: str) -> Release:
    """The release the next change builds on (the newest that did not fail)."""
    release = store.latest_release(app)
    if release is None:
        raise UsageError(f"app {app} has no release yet; deploy it with: dynosim up")
    return release


def set_config(
    store: Store,
    app: str,
    changes: Mapping[str, str],
    *,
    description: str | None = None,
    release_phase: bool = True,
) -> Release:
    """A new release with `changes` applied to the config vars (validated; nothing written on
    error)."""
    if not changes:
        raise UsageError("Usage: dynosim config:set KEY=VALUE [KEY2=VALUE2 ...]")
    for key, value in changes.items():  # the CLI checked its arguments; API callers too
        config.check_key(key)
        config.check_value(key, value)
    base = latest(store, app)
    description = description or f"Set {', '.join(changes)} config vars"
    return with_config(
        store, base, {**base.config, **changes}, description, release_phase=release_phase
    )


def unset_config(store: Store, app: str, keys: Iterable[str]) -> Release:
    keys = list(dict.fromkeys(keys))
    if not keys:
        raise UsageError("Usage: dynosim config:unset KEY [KEY2 ...]")
    for key in keys:
        config.check_key(key, "config:unset")
    base = latest(store, app)
    remaining = {k: v for k, v in base.config.items() if k not in keys}
    return with_config(store, base, remaining, f"Remove {', '.join(keys)} config vars")


def with_config(
    store: Store,
    base: Release,
    new: dict[str, str],
    description: str,
    *,
    release_phase: bool = True,
) -> Release:
    """A release like `base` with config vars `new`; `release_phase=False` for add-on changes
    (Heroku does not run the release phase for those)."""
    config.check_size(new)
    return store.create_release(
        base.app,
        image=base.image,
        images=base.images,
        source_hash=base.source_hash,
        description=description,
        process_types=base.process_types,
        config=new,
        release_phase=release_phase,
    )


def parse_version(text: str) -> int:
    match = re.fullmatch(r"v?(\d+)", text.strip())
    if not match:
        raise UsageError(f"{text!r} is not a release; name one like v7")
    return int(match.group(1))


def find(store: Store, app: str, text: str | None) -> Release:
    """The release named `v7` (or `7`); the current one when None."""
    if text:
        release = store.release(app, parse_version(text))
    else:
        release = store.current_release(app) or store.latest_release(app)
    if release is None:
        raise UsageError(
            f"Couldn't find release {text} of {app}" if text else f"{app} has no release"
        )
    return release


#: How `releases` marks a release that is not (yet) running, in Heroku's words.
STATUS_NOTE = {PENDING: "release command executing", FAILED: "release command failed"}


def format_list(
    app: str, releases: list[Release], current: Release | None, now: dt.datetime
) -> str:
    """Heroku's `releases`: a header naming the current release, a line per release."""
    header = f"=== ⬢ {app} Releases" + (f" - Current: {current.name}" if current else "")
    if not releases:
        return f"{header}\nNo releases yet"
    described = [f"{r.description} {STATUS_NOTE.get(r.status, '')}".strip() for r in releases]
    width = max(len(d) for d in described)
    lines = [header]
    for r, description in zip(releases, described, strict=True):
        when = heroku_time(r.created_at.isoformat(), now)
        lines.append(f"{r.name:<4} {description:<{width}}  {r.user}  {when}".rstrip())
    return "\n".join(lines)


def format_info(release: Release) -> str:
    """Heroku's `releases:info`: the release, then its config vars."""
    lines = [
        f"=== Release {release.name}",
        f"Change:  {release.description}",
        f"By:      {release.user}",
        f"When:    {release.created_at.isoformat(timespec='seconds')}",
        f"Status:  {release.status}" + (f" ({release.failure})" if release.failure else ""),
        f"Image:   {release.image[:19]}",
        "",
        config.format_human(release.app, release.config).replace(
            f"=== ⬢ {release.app} Config Vars", f"=== {release.name} Config vars"
        ),
    ]
    return "\n".join(lines)


def summary(release: Release) -> dict[str, Any]:
    """A release as `--json` shows it (config var names, never their values)."""
    return {
        "version": release.version,
        "description": release.description,
        "status": release.status,
        "failure": release.failure or None,
        "user": release.user,
        "created_at": release.created_at.isoformat(),
        "image": release.image,
        "process_types": release.process_types,
        "config_vars": sorted(release.config),
    }


def rollback_target(store: Store, app: str, version: int | None) -> Release:
    """vN, or by default the succeeded release before the current one (Heroku)."""
    current = store.current_release(app)
    if version is None:
        if current is None:
            raise UsageError(f"app {app} has no release to roll back from")
        earlier = [
            r
            for r in store.releases(app)
            if r.version < current.version and r.status == "succeeded"
        ]
        if not earlier:
            raise UsageError(f"{current.name} is the app's first release; nothing to roll back to")
        return earlier[0]
    target = store.release(app, version)
    if target is None:
        raise UsageError(f"Couldn't find release v{version} of {app}")
    if target.status == FAILED:
        raise UsageError(f"{target.name} failed ({target.failure}); roll back to one that ran")
    return target


def rollback(store: Store, app: str, target: Release) -> Release:
    """A new release with the target's image(s), process types and config vars."""
    return store.create_release(
        app,
        image=target.image,
        images=target.images,
        source_hash=target.source_hash,
        description=f"Rollback to {target.name}",
        process_types=target.process_types,
        config=target.config,
    )


def roll_out(app: str, release: Release, progress: Callable[[str], None]) -> bool:
    """Have the running `up` roll the release out, relaying its progress; False when no `up`
    runs (the next one will). ReleaseError when the release fails."""
    try:
        control.ControlClient(app).deploy(release.version, progress)
    except control.NotRunning:
        return False
    return True


def build_in_up(
    app: str, request: control_commands.Build, progress: Callable[[str], None]
) -> tuple[int, bool] | None:
    """Have the running `up` build the request's folder and roll the release out (its process
    has the build's modules loaded: a deploy's quickest path), relaying its progress; (the
    release's version, whether it is new), or None when no `up` runs."""
    try:
        return control.ControlClient(app).build(request, progress)
    except control.NotRunning:
        return None


def check_images(release: Release) -> None:
    """Rolling back needs the release's images to still exist."""
    from .docker import images

    for image in release.all_images:
        if not images.exists(image):
            raise UsageError(
                f"the image of {release.name} is gone (dynosim keeps the images of the newest"
                f" {KEEP_IMAGES} releases); deploy that code again instead"
            ) from None


def prune_images(store: Store, app: str) -> None:
    """Remove the app's images that no kept release uses (images in use by a container stay)."""
    from .docker import images

    kept = store.releases(app, KEEP_IMAGES)
    current = store.current_release(app)
    wanted = {i for r in [*kept, *([current] if current else [])] for i in r.all_images}
    for image in images.labelled("dynosim.image.app", app):
        if image not in wanted:
            images.remove(image)  # in use: next time
