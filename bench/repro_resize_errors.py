"""Router errors while dynos restart for a size change (`ps:type`) under load, on a Swarm.

examples/flask_app on a fresh 3-node local cluster (`cluster.create(3)`), `up --engine swarm`
with web=3 and the chosen router data plane; 4 threads send GETs through the router while
`ps:type web=SIZE` alternates between two sizes --rounds times (each round waits until the
three dynos are up at the new size). Prints every router line with an error code (H10, H12,
H13...) and, for each failed GET, how long the client waited: a near-instant H12 (Heroku's
30 s request timeout) is the bug this reproduces (issue 21: H12 with service=1ms).
Usage: python bench/repro_resize_errors.py [--router haproxy|python] [--rounds 4] [--json F]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench_node_loss import Load, dynosim, swarm_up  # noqa: E402
from common import report, until  # noqa: E402

EXAMPLE = ROOT / "examples" / "flask_app"
APP = "resizebench"
SIZES = ("standard-1x", "standard-2x")
ROUTER_ERROR = re.compile(r"heroku\[router\]: .*code=(H\d\d)")


def all_up_at(size: str) -> bool:
    ps = json.loads(dynosim("ps", "--json", app=APP))
    web = [d for d in ps if d["type"] == "web"]
    return len(web) == 3 and all(d["state"] == "up" and d["size"].lower() == size for d in web)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--router", choices=("haproxy", "python"), default="haproxy")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    load, rounds = None, []
    with swarm_up(APP, "--router", args.router) as (_, url, log):
        try:
            dynosim("ps:scale", f"web=3:{SIZES[1]}", app=APP)
            until(lambda: all_up_at(SIZES[1]), 300)
            load = Load(url, timeout=80)
            for index in range(args.rounds):
                chosen = SIZES[index % 2]
                began = time.monotonic()
                dynosim("ps:type", f"web={chosen}", app=APP)
                until(lambda chosen=chosen: all_up_at(chosen), 300)
                rounds.append(round(time.monotonic() - began, 2))
                time.sleep(2)
        finally:
            if load is not None:
                load.stop()
    errors = [line for line in log.read_text().splitlines() if ROUTER_ERROR.search(line)]
    report(
        {
            "router": args.router,
            "resize_seconds": rounds,
            "requests": load.sent if load else 0,
            "failed": load.failures if load else [],
            "router_errors": errors,
        },
        args.json,
    )


if __name__ == "__main__":
    main()
