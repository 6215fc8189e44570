"""Benchmark getting an app's image onto every node of a 3-node local Swarm, in one run.

Subject: examples/flask_app's image as dynosim builds it. Each round makes two fresh clusters
(`cluster.create(3)`), one per side, so each side starts cold:
- dynosim: `cluster_images.publish` (save | load into the manager, push to the cluster's
  registry) and both workers pulling the digest in parallel (what a Swarm service on them
  does), until all 3 nodes hold it;
- peer: `docker save` once into a file and `docker load` into each of the 3 nodes in
  parallel (the stand-in the registry replaces: what a user without a registry does).
Then, on the same cluster, the next release (a new small top layer on the same image) the
same way, and dynosim's publish of an image published before (the no-op). Prints medians.
Usage: python bench/bench_cluster_images.py [--rounds 3] [--json results.json]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import io
import os
import secrets
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import docker

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from common import report  # noqa: E402

from dynosim import cluster  # noqa: E402
from dynosim.api import App  # noqa: E402
from dynosim.docker import client as docker_client  # noqa: E402
from dynosim.docker import cluster_images  # noqa: E402

EXAMPLE = ROOT / "examples" / "flask_app"
NAME = "clusterbench"


def sockets(made: cluster.Cluster) -> list[Path]:
    return [node.socket for node in made.nodes]


def on_node(socket: Path, call) -> None:
    engine = docker.DockerClient(base_url=f"unix://{socket}", timeout=300)
    try:
        call(engine)
    finally:
        engine.close()


def dynosim_side(image: str, made: cluster.Cluster) -> float:
    started = time.monotonic()
    reference = cluster_images.publish(image, sockets(made)[0])
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        pulls = [
            pool.submit(on_node, s, lambda e: e.api.pull(reference)) for s in sockets(made)[1:]
        ]
        for pull in pulls:
            pull.result()
    return time.monotonic() - started


def peer_side(image: str, made: cluster.Cluster) -> float:
    started = time.monotonic()
    with tempfile.NamedTemporaryFile(prefix="dynosim-bench-") as saved:
        for chunk in docker_client.client().api.get_image(image):
            saved.write(chunk)
        saved.flush()

        def load(engine) -> None:
            with open(saved.name, "rb") as data:
                for _ in engine.api.load_image(data, quiet=True):
                    pass

        with concurrent.futures.ThreadPoolExecutor(3) as pool:
            for done in [pool.submit(on_node, s, load) for s in sockets(made)]:
                done.result()
    return time.monotonic() - started


def next_release(image: str) -> str:
    """The image with one small new top layer, as the next release's slug would be."""
    token = secrets.token_hex(6)
    dockerfile = f"FROM {image}\nRUN echo {token} > /app/.release\n"
    tag = f"dynosim-bench/cluster-next:{token}"
    docker_client.client().images.build(fileobj=io.BytesIO(dockerfile.encode()), tag=tag)
    return tag


def round_on_a_fresh_cluster(image: str, side) -> dict[str, float]:
    made = cluster.create(3, lambda line: None)
    try:
        cold = side(image, made)
        following = next_release(image)
        try:
            warm = side(following, made)
            again = time.monotonic()
            if side is dynosim_side:
                cluster_images.publish(following, sockets(made)[0])
            again = time.monotonic() - again
        finally:
            docker_client.client().images.remove(following, force=True)
    finally:
        cluster.destroy(lambda line: None)
    return {"cold": cold, "next_release": warm, "again": again}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    home = tempfile.mkdtemp(prefix="dynosim-bench-")
    os.environ["DYNOSIM_HOME"] = home
    try:
        release, _ = App.open(EXAMPLE, name=NAME).build()
        size = docker_client.client().images.get(release.image).attrs["Size"]
        results: dict[str, list[dict[str, float]]] = {"dynosim": [], "peer": []}
        for n in range(args.rounds):
            order = [("dynosim", dynosim_side), ("peer", peer_side)]
            for name, side in order if n % 2 == 0 else reversed(order):
                results[name].append(round_on_a_fresh_cluster(release.image, side))
        docker_client.client().images.remove(release.image, force=True)
    finally:
        shutil.rmtree(home, ignore_errors=True)
    medians = {
        name: {key: round(statistics.median(r[key] for r in runs), 2) for key in runs[0]}
        for name, runs in results.items()
    }
    report(
        {
            "image": release.image,
            "image_mb": round(size / 1e6),
            "rounds": args.rounds,
            "median_seconds": medians,
            "ratio_cold": round(medians["dynosim"]["cold"] / medians["peer"]["cold"], 2),
            "ratio_next_release": round(
                medians["dynosim"]["next_release"] / medians["peer"]["next_release"], 2
            ),
            "runs": results,
        },
        args.json,
    )


if __name__ == "__main__":
    main()
