"""Profile the router (or the baseline relay) under load with cProfile.

Starts the benchmark upstream and the server under test the way ``bench.py``
does (pinned to the first CPU, request log on), drives it for ``--duration``
seconds with the load generator, stops it with SIGTERM so cProfile writes its
statistics, and prints the functions that cost the most, by own time and by
cumulative time.  Run it for the router and for ``--server baseline`` to see
where the router's time goes beyond the relay's:

    python scripts/profile_router.py --endpoint openai --concurrency 8 [--stream --stream-tokens 60] [--paced]

``--save FILE`` keeps the raw statistics for ``python -m pstats`` or snakeviz.
cProfile slows Python code down about twofold, so read shares, not rates.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import pstats
import shutil
import sys
import tempfile

from bench import CACHED, ENDPOINTS, HOST, REPO, SCRIPTS, Service, cpu_plan, free_port, router_config
from loadgen import run_cell


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--server", choices=("router", "baseline"), default="router")
    parser.add_argument("--endpoint", choices=[e.name for e in ENDPOINTS], default="openai")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--stream", action="store_true")
    parser.add_argument("--stream-tokens", type=int, default=60)
    parser.add_argument("--paced", action="store_true", help="first token after 50 ms, then one every 5 ms")
    parser.add_argument("--cache", action="store_true", help="the router answers from its response cache (hits)")
    parser.add_argument("--top", type=int, default=40, help="rows per table (default 40)")
    parser.add_argument("--save", metavar="FILE", help="also keep the raw cProfile statistics")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    endpoint = next(e for e in ENDPOINTS if e.name == args.endpoint)
    if args.cache:
        endpoint = dataclasses.replace(endpoint, model=CACHED + endpoint.model, usage=True)
    server_cpus, client_cpus = cpu_plan()
    workdir = tempfile.mkdtemp(prefix="tornrouter-profile-")
    stats_path = args.save or os.path.join(workdir, "profile.stats")
    first, delay = (50, 5) if args.paced else (0, 0)
    py = sys.executable
    up_port, port = free_port(), free_port()
    upstream = Service(
        "upstream",
        [py, os.path.join(SCRIPTS, "bench_upstream.py"), "--port", str(up_port),
         "--first-token-ms", str(first), "--token-delay-ms", str(delay)],
        client_cpus, workdir, up_port,
    )
    if args.server == "router":
        served = ["-m", "tornrouter", "--conf", router_config(workdir, up_port, max_clients=max(200, args.concurrency)),
                  "--port", str(port)]
    else:
        served = [os.path.join(SCRIPTS, "relay_baseline.py"), "--port", str(port),
                  "--upstream", f"http://{HOST}:{up_port}", "--max-clients", str(max(200, args.concurrency))]
    server = Service(args.server, [py, "-m", "cProfile", "-o", stats_path, *served], server_cpus, workdir, port)
    try:
        upstream.wait_healthy()
        server.wait_healthy()
        if client_cpus:
            os.sched_setaffinity(0, client_cpus)
        target = endpoint.target(port, args.stream, args.stream_tokens)
        result = asyncio.run(run_cell(target, args.concurrency, args.duration, synchronized=args.paced))
    finally:
        server.stop()
        upstream.stop()
    cached = " (cache hits)" if args.cache else ""
    print(f"{args.server} {endpoint.name}{cached} c={args.concurrency}: {result.requests} answers, {result.errors} errors")
    stats = pstats.Stats(stats_path)
    stats.strip_dirs()
    for order in ("tottime", "cumulative"):
        stats.sort_stats(order).print_stats(args.top)
    if not args.save:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, SCRIPTS)
    os.chdir(REPO)
    sys.exit(main())
