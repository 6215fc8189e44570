"""The pytest plugin removes the app images its session built, on the engine each build ran
on: on Swarm, the engine beside the cluster, not the manager DOCKER_HOST names."""

import os

from dynosim import cluster, pytest_plugin
from dynosim.docker import images


def test_images_are_noted_and_removed_on_the_engine_the_builds_ran_on(monkeypatch):
    on = {"unix:///beside.sock": {"old": "shop"}, "unix:///manager.sock": {"node": "shop"}}
    monkeypatch.setenv("DOCKER_HOST", "unix:///manager.sock")
    target = cluster.SwarmTarget("unix:///manager.sock", {}, "unix:///beside.sock")
    monkeypatch.setattr(cluster, "swarm_target", lambda: target)
    monkeypatch.setattr(images, "labelled", lambda label: dict(on[os.environ["DOCKER_HOST"]]))
    removed = []
    monkeypatch.setattr(images, "remove", lambda i: removed.append((os.environ["DOCKER_HOST"], i)))
    monkeypatch.setattr(pytest_plugin, "_images_before", {})
    monkeypatch.setattr(pytest_plugin, "_used_images", {"shop"})

    pytest_plugin._note_images("swarm")
    on["unix:///beside.sock"] |= {"built": "shop", "theirs": "other-app"}
    pytest_plugin._note_images("swarm")  # noted once: "built" stays the session's
    pytest_plugin._remove_new_images()
    assert removed == [("unix:///beside.sock", "built")]
    assert os.environ["DOCKER_HOST"] == "unix:///manager.sock"
