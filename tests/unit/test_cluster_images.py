"""How images are named in the local cluster's registry, and the rules that keep a node's
containers off the cluster network, without an engine. On the real cluster:
tests/integration/test_swarm_images.py."""

import pytest

from dynosim.docker import cluster, cluster_images

IMAGE_ID = "sha256:" + "c0ffee" * 10 + "abcd"


@pytest.mark.parametrize(
    ("image", "name", "tag"),
    [
        ("dynosim/app-shop:72cbdeaeb3ba", "app-shop", "72cbdeaeb3ba"),
        ("dynosim/app-shop", "app-shop", "c0ffeec0ffee"),  # no tag: the id's
        ("localhost:5000/team/Web:v2", "team-web", "v2"),  # another registry's host goes
        ("python:3.12-slim", "python", "3.12-slim"),
        (IMAGE_ID, "image", "c0ffeec0ffee"),
        ("c0ffeec0ffee", "image", "c0ffeec0ffee"),
        ("dynosim/app-shop@sha256:" + "b" * 64, "app-shop", "c0ffeec0ffee"),
    ],
)
def test_an_image_keeps_its_name_without_namespace_or_host_and_its_tag(image, name, tag):
    assert cluster_images.registry_name(image) == name
    assert cluster_images.tag_of(image, IMAGE_ID) == tag


def test_a_nodes_containers_may_not_open_connections_to_the_cluster_network_or_the_node():
    rules = [" ".join(rule) for rule in cluster.lockdown_rules("172.30.0.0/16")]
    mangle = "iptables -w -t mangle"
    assert rules == [
        f"{mangle} -N DYNOSIM-NODE",
        f"{mangle} -A DYNOSIM-NODE -i eth0 -j RETURN",  # the cluster network itself
        f"{mangle} -A DYNOSIM-NODE -i lo -j RETURN",  # the node's own engine pushing
        f"{mangle} -A DYNOSIM-NODE -d 172.30.0.0/16 -j DROP",
        f"{mangle} -A DYNOSIM-NODE -m addrtype --dst-type LOCAL -j DROP",
        f"{mangle} -I PREROUTING -m conntrack --ctstate NEW -j DYNOSIM-NODE",  # replies pass
    ]
