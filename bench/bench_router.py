"""Benchmark the router against nginx, in one run, on the same 3 web dynos of the example app.

Legs, each `wrk` on loopback for --seconds (alternating order per round):
(a) through dynosim's router; (b) through nginx (Debian nginx-light, one worker, round robin)
to the same dynos' bridge addresses; (c) directly to one dyno; and over HTTPS (d) dynosim's
router vs (e) nginx with the same certificate. Throughput at 32 connections; latency at 1
connection for (a), (b) and (c), where the p50 difference to (c) is what a proxy adds.

Prints medians and ratios, and where the CPU went: milliseconds of CPU per request of dynosim's
`up` process (router and log readers), nginx, the dynos, Docker and wrk. Goals: (a)/(b)
throughput >= 1.0x; p50 (a) - (c) <= 0.5 ms; (d)/(e) >= 0.8x.

--router picks dynosim's router engine (HAProxy or Python; default: auto, as `up`). --pin
puts the proxies and wrk on CPU 0 and the dynos and Docker on CPU 1, as on Heroku, where
routers and dynos do not share machines. --py-spy samples the `up` process during one more
router leg and prints where its time went. Needs wrk and nginx (apt-get install wrk
nginx-light), and for --py-spy, py-spy (pip install py-spy).

--metrics-cost runs only the router leg, against two `up`s of the example app side by side (3
web dynos each): one recording the Metrics tab as always, one with its recorder off (`up
--no-metrics-recorder`, there for this); the legs alternate, and each round's throughput ratio
(on / off) gives the median and its spread. Goal: the recorder costs at most 2%. With --same
both record (an A/A run: what the two `up`s differ by without the recorder).
Usage: python bench/bench_router.py [--rounds 3] [--seconds 10] [--router haproxy|python]
       [--pin] [--py-spy] [--metrics-cost [--same]] [--json F]
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from common import free_port, report, until  # noqa: E402
from cpu import Meter  # noqa: E402

from dynosim import certs  # noqa: E402
from dynosim.docker import client as docker_client  # noqa: E402
from dynosim.docker.dynos import PORT  # noqa: E402

EXAMPLE = ROOT / "examples" / "flask_app"
APP = "routerbench"
DYNOS = 3
CONNECTIONS = 32
NGINX_CONF = """\
daemon off;
worker_processes 1;
pid {work}/nginx.pid;
error_log {work}/nginx-error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log {work}/nginx-access.log combined buffer=64k;
    client_body_temp_path {work}/body;
    proxy_temp_path {work}/proxy;
    fastcgi_temp_path {work}/fastcgi;
    uwsgi_temp_path {work}/uwsgi;
    scgi_temp_path {work}/scgi;
    upstream dynos {{
{servers}
    }}
    server {{
        listen 127.0.0.1:{port};
        listen 127.0.0.1:{tls_port} ssl;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        ssl_protocols TLSv1.2 TLSv1.3;
        location / {{
            proxy_pass http://dynos;
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
        }}
    }}
}}
"""


def need(tool: str) -> str:
    found = shutil.which(tool, path=f"{os.environ.get('PATH')}:/usr/sbin:/sbin") or shutil.which(
        tool, path=str(Path(sys.executable).parent)
    )
    if not found:
        how = "pip install py-spy" if tool == "py-spy" else "apt-get install wrk nginx-light"
        sys.exit(f"error: {tool} is missing; install it with: {how}")
    return found


def wrk(url: str, seconds: int, connections: int, cpus: str = "") -> tuple[float, float]:
    """Requests per second and p50 latency (ms) of one wrk run (on `cpus` if given); non-2xx
    answers fail it (socket errors do not: uWSGI closes each connection after its response)."""
    pin = ["taskset", "-c", cpus] if cpus else []
    out = subprocess.run(
        [*pin, need("wrk"), "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", url],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    if "Non-2xx" in out:
        raise RuntimeError(f"wrk saw errors against {url}:\n{out}")
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    value, unit = re.search(r"50%\s+([\d.]+)(us|ms|s)\b", out).groups()
    return rate, float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def web_addresses(app: str = APP) -> list[str]:
    containers = docker_client.client().containers.list(
        filters={"label": [f"dynosim.app={app}", "dynosim=dyno", "dynosim.type=web"]}
    )
    return sorted(
        n["IPAddress"]
        for c in containers
        for n in c.attrs["NetworkSettings"]["Networks"].values()
        if n.get("IPAddress")
    )


def start_nginx(
    work: Path, upstreams: list[str], issued: certs.Issued
) -> tuple[subprocess.Popen, str, str]:
    """nginx in the foreground as a child, round robin over `upstreams` (host:port each):
    (process, http URL, https URL)."""
    port, tls_port = free_port(), free_port()
    servers = "\n".join(f"        server {upstream};" for upstream in upstreams)
    conf = work / "nginx.conf"
    conf.write_text(
        NGINX_CONF.format(
            work=work,
            servers=servers,
            port=port,
            tls_port=tls_port,
            cert=issued.cert,
            key=issued.key,
        )
    )
    process = subprocess.Popen(
        [need("nginx"), "-c", str(conf), "-p", str(work)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    until(lambda: requests.get(f"http://127.0.0.1:{port}/", timeout=5).ok, 30)
    return process, f"http://127.0.0.1:{port}/", f"https://127.0.0.1:{tls_port}/"


def pin(up: int, nginx: int) -> None:
    """The proxies (their threads, workers and HAProxy) on CPU 0; the dynos and Docker on
    CPU 1."""
    for container in docker_client.client().containers.list(
        filters={"label": f"dynosim.app={APP}"}
    ):
        container.update(cpuset_cpus="1")
    children = [
        subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
        for pid in (up, nginx)
    ]
    taskset("0", [up, nginx, *children[0], *children[1]])
    taskset("1", docker_processes())


def docker_processes() -> list[str]:
    found = subprocess.run(
        ["pgrep", "-x", "dockerd|containerd|containerd-shim.*"], capture_output=True, text=True
    )
    return found.stdout.split()


def taskset(cpus: str, pids: list[int | str]) -> None:
    for pid in pids:
        subprocess.run(["taskset", "-a", "-p", "-c", cpus, str(pid)], capture_output=True)


def sample(pid: int, url: str, seconds: int, cpus: str) -> dict[str, object]:
    """py-spy on `pid` while wrk loads `url`: the share of samples per thread and the functions
    the samples were in (own time, top 15)."""
    out = Path(tempfile.mkdtemp()) / "samples.txt"
    spy = subprocess.Popen(
        [need("py-spy"), "record", "-p", str(pid), "-d", str(seconds), "-r", "250", "--threads",
         "--nonblocking", "--format", "raw", "-o", str(out)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    wrk(url, seconds, CONNECTIONS, cpus)
    spy.wait(60)
    threads: collections.Counter[str] = collections.Counter()
    functions: collections.Counter[str] = collections.Counter()
    for line in out.read_text().splitlines():
        stack, count = line.rsplit(" ", 1)
        frames = stack.split(";")
        thread = re.sub(r"thread \(\d+\): ", "", frames[0])
        threads[re.sub(r"-web\.\d+$", "-web.N", thread)] += int(count)
        functions[frames[-1]] += int(count)
    total = sum(threads.values()) or 1

    def shares(counter: collections.Counter[str], top: int) -> dict[str, float]:
        return {k: round(v / total, 3) for k, v in counter.most_common(top)}

    return {"threads": shares(threads, 5), "functions": shares(functions, 15)}


def start_up(work: Path, app: str, router: str, *extra: str) -> tuple[subprocess.Popen, str]:
    """`dynosim up` of a copy of the example app with 3 web dynos and no worker, once its
    router reaches every one of them: (process, router URL)."""
    app_dir = work / app
    shutil.copytree(EXAMPLE, app_dir)
    port = free_port()
    up = subprocess.Popen(
        [sys.executable, "-m", "dynosim", "up", str(app_dir), "-a", app, "--port", str(port),
         "--https-port", "0", "--dashboard-port", "0", "--grace", "5", "--router", router,
         *extra],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}/"
    until(lambda: requests.get(url, timeout=5).ok)
    subprocess.run([sys.executable, "-m", "dynosim", "ps:scale", "-a", app, f"web={DYNOS}",
                    "worker=0"], check=True, capture_output=True)  # fmt: skip
    until(lambda: len(web_addresses(app)) == DYNOS)
    until(lambda: {requests.get(url, timeout=5).json()["dyno"] for _ in range(30)}
          == {f"web.{n}" for n in range(1, DYNOS + 1)})  # fmt: skip
    return up, url


def metrics_cost(args: argparse.Namespace, work: Path) -> dict[str, object]:
    """The router leg with the Metrics recorder on and off, alternating over the rounds."""
    ups = []
    rates: dict[str, list[float]] = {"on": [], "off": []}
    up_cpu: dict[str, list[float]] = {"on": [], "off": []}  # ms per request of its `up`
    total_cpu: dict[str, list[float]] = {"on": [], "off": []}  # of everything measured
    try:
        ups.append(start_up(work, APP, args.router))
        off = () if args.same else ("--no-metrics-recorder",)  # --same: an A/A control run
        ups.append(start_up(work, f"{APP}-off", args.router, *off))
        legs = {"on": ups[0], "off": ups[1]}
        for _, url in legs.values():
            wrk(url, 2, CONNECTIONS)  # warm up the dynos' workers
        for round_number in range(args.rounds):
            order = list(legs.items())
            if round_number % 2:
                order.reverse()
            for name, (up, url) in order:
                meter = Meter(up.pid)
                rates[name].append(wrk(url, args.seconds, CONNECTIONS)[0])
                parts = meter.per_request(rates[name][-1] * args.seconds)
                up_cpu[name].append(parts.get("dynosim up", 0.0))
                total_cpu[name].append(sum(parts.values()))
            print(f"round {round_number + 1}: on={rates['on'][-1]:.1f} off={rates['off'][-1]:.1f}",
                  flush=True)  # fmt: skip
    finally:
        for up, _ in ups:
            up.send_signal(signal.SIGINT)
        for up, _ in ups:
            up.wait(120)
    ratios = sorted(on / off for on, off in zip(rates["on"], rates["off"], strict=True))
    up_on, up_off = statistics.median(up_cpu["on"]), statistics.median(up_cpu["off"])
    return {
        "rounds": args.rounds,
        "seconds_per_leg": args.seconds,
        "router": args.router,
        "connections": CONNECTIONS,
        "median_rps_metrics_on": round(statistics.median(rates["on"]), 1),
        "median_rps_metrics_off": round(statistics.median(rates["off"]), 1),
        "median_ratio_on_to_off": round(statistics.median(ratios), 4),
        "ratio_spread": [round(ratios[0], 4), round(ratios[-1], 4)],
        # on a machine the legs keep busy, throughput follows CPU per request: the recorder's
        # share of it, measured where it runs (the `up` process), is its cost, less noisy
        "up_cpu_ms_per_request_on": round(up_on, 4),
        "up_cpu_ms_per_request_off": round(up_off, 4),
        "all_cpu_ms_per_request_on": round(statistics.median(total_cpu["on"]), 4),
        "recorder_share_of_cpu_per_request": round(
            (up_on - up_off) / statistics.median(total_cpu["on"]), 4
        ),
        "samples": {"rps": rates, "up_cpu_ms": up_cpu, "all_cpu_ms": total_cpu},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--pin", action="store_true", help="proxies on CPU 0, dynos on CPU 1")
    parser.add_argument("--py-spy", action="store_true", help="sample the router with py-spy")
    parser.add_argument("--router", default="auto", help="dynosim's router engine (up --router)")
    parser.add_argument("--metrics-cost", action="store_true", help="the recorder on vs off")
    parser.add_argument("--same", action="store_true", help="--metrics-cost with it on in both")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    for tool in ("wrk", "nginx", *(["py-spy"] if args.py_spy else [])):
        need(tool)
    work = Path(tempfile.mkdtemp(prefix="dynosim-bench-"))
    work.chmod(0o755)  # nginx's workers (nobody) write their temp files below it
    os.environ.setdefault("DYNOSIM_HOME", str(work / "home"))
    if args.metrics_cost:
        report(metrics_cost(args, work), args.json)
        shutil.rmtree(work, ignore_errors=True)
        return
    app_dir = work / APP
    shutil.copytree(EXAMPLE, app_dir)
    port, tls_port = free_port(), free_port()
    up = subprocess.Popen(
        [sys.executable, "-m", "dynosim", "up", str(app_dir), "-a", APP, "--port", str(port),
         "--https-port", str(tls_port), "--grace", "5", "--router", args.router],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    router, router_tls = f"http://127.0.0.1:{port}/", f"https://127.0.0.1:{tls_port}/"
    nginx = None
    results: dict[str, list[float]] = {}
    cpu: dict[str, dict[str, list[float]]] = {}
    cpus = "0" if args.pin else ""
    spied = None
    try:
        until(lambda: requests.get(router, timeout=5).ok)
        subprocess.run([sys.executable, "-m", "dynosim", "ps:scale", "-a", APP, f"web={DYNOS}",
                        "worker=0"], check=True, capture_output=True)  # fmt: skip
        until(lambda: len(web_addresses()) == DYNOS)
        addresses = web_addresses()
        direct = f"http://{addresses[0]}:{PORT}/"
        until(lambda: {requests.get(router, timeout=5).json()["dyno"] for _ in range(30)}
              == {f"web.{n}" for n in range(1, DYNOS + 1)})  # fmt: skip
        upstreams = [f"{ip}:{PORT}" for ip in addresses]
        nginx, proxy, proxy_tls = start_nginx(work, upstreams, certs.issue(APP))
        legs = {
            "a_router": (router, CONNECTIONS),
            "b_nginx": (proxy, CONNECTIONS),
            "c_direct": (direct, CONNECTIONS),
            "d_router_https": (router_tls, CONNECTIONS),
            "e_nginx_https": (proxy_tls, CONNECTIONS),
            "a_router_1conn": (router, 1),
            "b_nginx_1conn": (proxy, 1),
            "c_direct_1conn": (direct, 1),
        }
        if args.pin:
            pin(up.pid, nginx.pid)
        wrk(router, 2, CONNECTIONS, cpus)  # warm up the dynos' workers
        for round_number in range(args.rounds):
            order = list(legs.items())
            if round_number % 2:
                order.reverse()
            for name, (url, connections) in order:
                meter = Meter(up.pid)
                rate, p50 = wrk(url, args.seconds, connections, cpus)
                results.setdefault(f"{name}_rps", []).append(rate)
                results.setdefault(f"{name}_p50_ms", []).append(p50)
                for part, ms in meter.per_request(rate * args.seconds).items():
                    cpu.setdefault(name, {}).setdefault(part, []).append(ms)
            print(
                f"round {round_number + 1}: "
                + ", ".join(f"{k}={v[-1]:.1f}" for k, v in results.items() if k.endswith("rps")),
                flush=True,
            )
        if args.py_spy:
            spied = sample(up.pid, router, args.seconds, cpus)
    finally:
        if nginx is not None:
            nginx.send_signal(signal.SIGQUIT)
            nginx.wait(30)
        up.send_signal(signal.SIGINT)
        up.wait(120)
        if args.pin:
            taskset(f"0-{os.cpu_count() - 1}", docker_processes())
    medians = {k: statistics.median(v) for k, v in results.items()}
    result = {
        "rounds": args.rounds,
        "seconds_per_leg": args.seconds,
        "pinned": args.pin,
        "router": args.router,
        "connections": CONNECTIONS,
        "medians": {k: round(v, 3) for k, v in medians.items()},
        "ratio_router_to_nginx_rps": round(medians["a_router_rps"] / medians["b_nginx_rps"], 3),
        "ratio_router_to_nginx_https_rps": round(
            medians["d_router_https_rps"] / medians["e_nginx_https_rps"], 3
        ),
        "router_added_p50_ms_1conn": round(
            medians["a_router_1conn_p50_ms"] - medians["c_direct_1conn_p50_ms"], 3
        ),
        "nginx_added_p50_ms_1conn": round(
            medians["b_nginx_1conn_p50_ms"] - medians["c_direct_1conn_p50_ms"], 3
        ),
        "cpu_ms_per_request": {
            leg: {part: round(statistics.median(v), 3) for part, v in parts.items()}
            for leg, parts in cpu.items()
        },
        "py_spy": spied,
        "samples": {k: [round(x, 3) for x in v] for k, v in results.items()},
    }
    report(result, args.json)
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
