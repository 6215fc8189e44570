"""`App.run` on a Swarm without attaching (`docker.swarm_run.captured`), its logic behind the
adapter: the task's exit status and its container's output, an error naming Swarm's reason
for a task that never ran, and the service removed either way. The real thing runs in
tests/integration/test_swarm_ops.py."""

from types import SimpleNamespace

import docker.errors
import pytest

from dynosim.container_engine import ONE_OFF, DynoSpec
from dynosim.docker import swarm_run
from dynosim.errors import EngineError

RELEASE = SimpleNamespace(app="shop", version=7)  # the fake adapter reads no more
SPEC = DynoSpec(RELEASE, "run", 4821, ONE_OFF, "python manage.py check")


class Container:
    """The task's container on its node, gone once its service is removed."""

    def __init__(self, engine):
        self.engine = engine

    def logs(self):
        return b"System check identified no issues\n"

    def kill(self):
        pass

    def reload(self):
        if self.engine.removed:
            raise docker.errors.NotFound("gone")


class Tasks:
    def __init__(self, engine, states):
        self.engine, self.states = engine, list(states)

    def until(self, service, done, timeout):
        return self.states.pop(0)

    def reachable(self, service):
        return Container(self.engine) if self.engine.has_container else None


class Swarm:
    """The adapter as `captured` uses it; `states` are the task as each wait finds it."""

    def __init__(self, *states, has_container=True):
        self.tasks, self.has_container = Tasks(self, states), has_container
        self.made, self.removed = [], []

    def create(self, spec, hold=""):
        self.made.append((spec, hold))
        return "service"

    def start(self, service):
        pass

    def remove(self, service):
        self.removed.append(service)


def task(state, exit_code=None, err=None):
    status = {"State": state, **({"Err": err} if err else {})}
    if exit_code is not None:
        status["ContainerStatus"] = {"ContainerID": "c1", "ExitCode": exit_code}
    return {"Status": status}


def test_the_command_is_the_task_its_status_and_output_come_back_and_it_is_removed():
    engine = Swarm(task("running", 0), task("failed", 5))
    assert swarm_run.captured(engine, SPEC) == (5, "System check identified no issues\n")
    assert engine.made == [(SPEC, "")]  # no hold: the command is the task's own process
    assert engine.removed == ["service"]


@pytest.mark.parametrize(
    ("states", "reason"),
    [
        ([task("rejected", err="No such image: x")], "No such image: x"),
        ([task("pending")], "not placed"),  # no node had room within PLACE_TIMEOUT
    ],
)
def test_a_task_that_never_ran_is_an_error_naming_why_and_nothing_is_left(states, reason):
    engine = Swarm(*states, has_container=False)
    with pytest.raises(EngineError, match=f"run.4821 did not run on the cluster: {reason}"):
        swarm_run.captured(engine, SPEC)
    assert engine.removed == ["service"]
