"""cluster:create / cluster:destroy without an engine: names, the socket's place, refusals
before anything is made. The real cluster: tests/integration/test_swarm_cluster.py."""

import json
import os
import shlex

import pytest
from click.testing import CliRunner

from dynosim import cluster
from dynosim.cli import main
from dynosim.docker import client as docker_client
from dynosim.docker import cluster as docker_cluster
from dynosim.errors import UsageError


@pytest.fixture(autouse=True)
def no_engine(tmp_path, monkeypatch):
    """Own state, and no engine: a refusal must come before Docker is asked anything."""
    monkeypatch.setenv("DYNOSIM_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-docker.sock")
    docker_client.connected.cache_clear()
    yield
    docker_client.connected.cache_clear()


def invoke(*args):
    result = CliRunner().invoke(main, list(args), prog_name="dynosim")
    return result.exit_code, result.stdout, result.stderr


def recorded(size=3, id="abc123"):
    folder = cluster.folder()
    folder.mkdir(parents=True)
    record = {"id": id, "nodes": size, "engine": "unix:///var/run/docker.sock"}
    (folder / "cluster.json").write_text(json.dumps(record))
    return cluster.current()


def test_names_carry_the_cluster_id_and_the_manager_socket_is_the_docker_host():
    made = recorded(size=2)
    assert made.network == "dynosim-cluster-abc123"
    assert [(n.container, n.hostname, n.volume) for n in made.nodes] == [
        ("dynosim-cluster-abc123-node1", "node1", "dynosim-cluster-abc123-node1"),
        ("dynosim-cluster-abc123-node2", "node2", "dynosim-cluster-abc123-node2"),
    ]
    assert made.nodes[1].socket == cluster.folder() / "node2" / "docker.sock"
    assert cluster.export_line(made) == (
        f"export DOCKER_HOST=unix://{cluster.folder()}/node1/docker.sock"
    )


def test_a_cluster_of_another_home_is_found_by_its_manager_socket(tmp_path, monkeypatch):
    """A test's private DYNOSIM_HOME after `eval "$(dynosim cluster:create 3)"` elsewhere: the
    Swarm target carries that cluster's node access; no memory of it outlives DOCKER_HOST."""
    made = recorded()
    monkeypatch.setenv("DYNOSIM_HOME", str(tmp_path / "private"))
    assert cluster.current() is None and cluster.in_use() is None  # DOCKER_HOST names no node
    monkeypatch.setenv("DOCKER_HOST", made.docker_host)
    assert cluster.current() is None and cluster.in_use() == made
    target = cluster.swarm_target()
    assert (target.manager, target.builds_on, target.cluster) == (
        made.docker_host, made.engine, made,
    )  # fmt: skip
    assert target.nodes == {node.hostname: node.socket for node in made.nodes}
    monkeypatch.setenv("DOCKER_HOST", made.engine)  # as while building beside it
    assert cluster.in_use() is None
    assert cluster.swarm_target(made.docker_host) == target  # the manager an app recorded
    assert cluster.named_by(made.docker_host.replace("node1", "node2")) is None  # a worker


def test_a_swarm_without_cluster_json_beside_its_socket_is_not_one_dynosim_made(
    tmp_path, monkeypatch
):
    made = recorded()
    elsewhere = f"unix://{tmp_path}/foreign/node1/docker.sock"
    assert cluster.named_by(elsewhere) is None
    monkeypatch.setattr(docker_cluster, "is_swarm_manager", lambda host: host == elsewhere)
    foreign = cluster.swarm_target(elsewhere)
    assert (foreign.manager, foreign.nodes, foreign.builds_on) == (elsewhere, {}, elsewhere)
    assert foreign.cluster is None and made is not None
    with pytest.raises(UsageError, match=r"the Swarm it last ran on \(unix://.*\) is not a"):
        cluster.swarm_target(f"unix://{tmp_path}/gone.sock")


def test_building_on_points_docker_host_at_the_build_engine_until_the_last_block_ends(
    monkeypatch,
):
    """Two apps started on Swarm may stop in any order: DOCKER_HOST comes back once both did."""
    target = cluster.SwarmTarget("unix:///m.sock", {}, "unix:///engine.sock")
    monkeypatch.setenv("DOCKER_HOST", "unix:///m.sock")
    first, second = cluster.building_on(target), cluster.building_on(target)
    first.__enter__()
    assert os.environ["DOCKER_HOST"] == "unix:///engine.sock"
    second.__enter__()
    first.__exit__(None, None, None)
    assert os.environ["DOCKER_HOST"] == "unix:///engine.sock"  # the second app still runs
    second.__exit__(None, None, None)
    assert os.environ["DOCKER_HOST"] == "unix:///m.sock"
    monkeypatch.delenv("DOCKER_HOST")
    with pytest.raises(RuntimeError), cluster.building_on(target):
        other = cluster.SwarmTarget("unix:///o.sock", {}, "unix:///other.sock")
        with pytest.raises(UsageError, match="another app on Swarm builds on unix:///engine"):
            cluster.building_on(other).__enter__()
        raise RuntimeError
    assert "DOCKER_HOST" not in os.environ


def test_each_node_locks_down_then_runs_an_engine_on_its_socket_and_the_owner_folder_socket():
    shell, flag, script = cluster.dockerd_command(1000, "172.30.0.0/16")
    *rules, engine = script.split(" && ")
    assert (shell, flag) == ("sh", "-c")
    assert rules == [shlex.join(r) for r in docker_cluster.lockdown_rules("172.30.0.0/16")]
    assert engine == (  # exec: the engine gets the node's SIGTERM
        "exec dockerd --host=unix:///var/run/docker.sock --host=unix:///dynosim-api/docker.sock"
        " --group=1000 --insecure-registry=172.30.0.0/16"  # the cluster's registry, its network
    )


@pytest.mark.parametrize("size", [0, 10])
def test_a_size_out_of_range_is_one_line_and_exit_2(size):
    assert invoke("cluster:create", str(size)) == (
        2,
        "",
        f"error: cluster:create takes 1 to 9 nodes, not {size}\n",
    )
    assert not cluster.folder().exists()


def test_a_second_cluster_is_refused_and_the_first_kept():
    made = recorded()
    code, stdout, stderr = invoke("cluster:create", "2")
    assert (code, stdout) == (2, "")
    assert stderr == (
        f"error: a cluster of 3 nodes exists already ({made.docker_host}); remove it first"
        " with: dynosim cluster:destroy\n"
    )
    assert cluster.current() == made


def test_a_state_folder_too_deep_for_a_unix_socket_is_refused(tmp_path, monkeypatch):
    deep = tmp_path / ("d" * 100)
    monkeypatch.setenv("DYNOSIM_HOME", str(deep))
    with pytest.raises(UsageError, match="too long for a unix socket; set DYNOSIM_HOME"):
        cluster.create(3, print)
    assert not (deep / "cluster").exists()


def test_destroy_without_a_cluster_is_one_line_and_exit_2():
    assert invoke("cluster:destroy") == (
        2,
        "",
        "error: no cluster to destroy here; dynosim cluster:create N makes one\n",
    )


def test_cluster_without_one_says_how_to_make_one():
    assert invoke("cluster") == (0, "No cluster here; dynosim cluster:create N makes one.\n", "")


def test_an_unreadable_record_is_named_in_one_line():
    cluster.folder().mkdir(parents=True)
    (cluster.folder() / "cluster.json").write_text("{not json")
    code, _, stderr = invoke("cluster:destroy")
    assert code == 2
    assert stderr.startswith(f"error: {cluster.folder() / 'cluster.json'}: unreadable (")
    assert stderr.count("\n") == 1


def test_the_record_and_socket_folders_are_the_owners_only(monkeypatch):
    made = cluster.Cluster("abc123", 2, cluster.folder(), "unix:///var/run/docker.sock")
    cluster._record(made)
    modes = [os.stat(p).st_mode & 0o777 for p in (made.folder, *(n.api_dir for n in made.nodes))]
    assert modes == [0o700, 0o700, 0o700]
    assert cluster.current() == made


def test_a_cluster_whose_manager_does_not_answer_says_how_to_clean_up():
    recorded()  # a record, but no node answers on its socket
    code, stdout, stderr = invoke("cluster")
    assert (code, stdout) == (3, "=== Swarm cluster abc123 (3 nodes)\n")
    assert stderr.startswith("error: the cluster's Swarm manager does not answer (")
    assert stderr.endswith("); dynosim cluster:destroy removes what is left of the cluster\n")
    assert stderr.count("\n") == 1


def test_the_export_line_is_quoted_for_eval_when_the_path_needs_it(tmp_path, monkeypatch):
    monkeypatch.setenv("DYNOSIM_HOME", str(tmp_path / "my home"))
    made = cluster.Cluster("abc123", 1, cluster.folder(), "unix:///var/run/docker.sock")
    assert cluster.export_line(made) == (
        f"export DOCKER_HOST='unix://{tmp_path}/my home/cluster/node1/docker.sock'"
    )
