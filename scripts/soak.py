"""Soak the router under faults: many requests, a misbehaving upstream, and the
router's memory watched from start to end.

Starts, on loopback, a fake upstream in this process (``tests/fake_upstream.py``:
one port answers with a configurable mix of faults, another always answers
well) and the router as a child process (``python -m tornrouter``, request log
on, in a temp dir), routes with and without fallbacks (and one with
``continue_on_failure``), then sends mixed traffic with bounded concurrency:
both endpoints, streamed and not, over keep-alive connections, a few clients
hanging up mid-request.  Every streamed answer is checked with
``tornrouter.validate_stream``.  It prints the router's RSS every
``--sample-every`` seconds, then requests/s, the outcomes by kind (200, stream
ended by an error event, each 4xx and 5xx status, connection errors, hang-ups,
ill-formed streams), the RSS at start and end, and checks the request log has an
entry for every request.  With two CPUs the router gets the first and this
process (load and upstream) the second.  Children are killed on every way out.

    python scripts/soak.py [--requests 100000 | --duration 600] [--concurrency 64]
                           [--faults ok=60,500=4,...] [--stream-share 0.5] [--json out.json]

``--faults`` weighs the misbehaviours (see ``FAULTS``); the rest of the
upstream's answers are good ones.  ``--slow-streams 1000`` keeps that many slow
streams open besides (from the good upstream, an event every
``--slow-event-s``), from before the traffic starts to its end, and reports the
router's RSS per open stream: RSS must stay flat with them open.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import random
import shutil
import signal
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import yaml

SCRIPTS = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(SCRIPTS)
sys.path[:0] = [SCRIPTS, REPO]

from bench import HOST, Service, count_lines, cpu_plan, free_port  # noqa: E402
from loadgen import _Connection  # noqa: E402  (the benchmark's cheap keep-alive client connection)
from tests.fake_upstream import FakeUpstream, Reply, anthropic_sse, openai_sse, sse_data, sse_event  # noqa: E402
from tornrouter.sse import SSEDecoder  # noqa: E402
from tornrouter.validate_stream import validate  # noqa: E402

OPENAI_PATH, ANTHROPIC_PATH = "/v1/chat/completions", "/v1/messages"
FAULTS = {  # name -> default weight (percent of the faulty upstream's answers)
    "ok": 60, "500": 4, "502": 2, "503": 3, "529": 3, "429": 3, "drop": 2, "reset": 2, "cut": 3,
    "stall": 1, "slow": 1, "malformed": 2, "html": 2, "error_event": 3, "huge": 0,
}
MODELS = ["fb-oai", "fb-ant", "cont", "solo-oai", "solo-ant", "good"]
HTML = b"<html><body><h1>502 Bad Gateway</h1></body></html>"
MAX_RESPONSE_BYTES = 1024 * 1024
TEXT = "The quick brown fox jumps over the lazy dog, then naps in the warm afternoon sun."


# --- the upstream ---------------------------------------------------------------------


def error_body(kind: str, message: str) -> dict[str, Any]:
    if kind == "anthropic":
        return {"type": "error", "error": {"type": "api_error", "message": message}}
    return {"error": {"message": message, "type": "server_error", "param": None, "code": None}}


def fault_chooser(weights: dict[str, float], rng: random.Random):
    """``FakeUpstream.chooser``: each answer drawn from ``weights``."""
    names, values = list(weights), list(weights.values())

    def choose(kind: str, body: Any) -> Reply | None:
        fault = rng.choices(names, values)[0]
        stream = isinstance(body, dict) and body.get("stream")
        events = openai_sse(TEXT) if kind == "openai" else anthropic_sse(TEXT)
        cut = rng.randrange(1, len(events))
        if fault == "ok":
            return None
        if fault in ("500", "502", "503", "529", "429"):
            retry_after = {"Retry-After": "0"} if fault in ("429", "503") else {}
            return Reply(status=int(fault), body=error_body(kind, f"fault {fault}"), headers=retry_after)
        if fault in ("drop", "reset"):
            return Reply(sse=events[:cut] if stream else None, drop=True, reset=fault == "reset")
        if fault == "cut":
            return Reply(sse=events[:cut]) if stream else Reply(cut_after=rng.randrange(1, 100))
        if fault == "stall":
            return Reply(sse=events, stall_after=cut) if stream else Reply(delay=3600)
        if fault == "slow":
            return Reply(sse=events, stall_after=0) if stream else Reply(delay=3600)
        if fault == "malformed":
            return Reply(sse=[*events[:cut], b"data: {broken\n\n"]) if stream else Reply(body=b'{"choices": [{"mess')
        if fault == "html":
            return Reply(status=rng.choice([200, 502]), body=HTML, headers={"Content-Type": "text/html"})
        if fault == "huge":
            return Reply(body=b'{"pad": "' + b"x" * (2 * MAX_RESPONSE_BYTES) + b'"}')
        if stream:  # error_event
            error = (sse_event("error", {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})
                     if kind == "anthropic" else sse_data({"error": {"message": "overloaded", "type": "server_error"}}))
            return Reply(sse=[*events[:cut], error])
        return Reply(status=503, body=error_body(kind, "overloaded"))

    return choose


def slow_chooser(event_s: float):
    """``FakeUpstream.chooser`` for the good upstream: ``gpt-slow`` streams pace
    their events, everything else gets the canned answer."""
    events = openai_sse(" ".join([TEXT] * 4))

    def choose(kind: str, body: Any) -> Reply | None:
        if isinstance(body, dict) and body.get("model") == "gpt-slow":
            return Reply(sse=events, chunk_delay=event_s)
        return None

    return choose


def router_config(workdir: str, faulty: int, good: int, slow_streams: int = 0) -> str:
    flaky = {
        "api_key": "sk-soak", "retries": 1, "retry_backoff_s": 0.01, "retry_backoff_max_s": 0.05, "retry_after_max_s": 0.05,
        "timeout_s": 3, "first_byte_timeout_s": 1, "idle_timeout_s": 1,
        "breaker": {"failures": 400, "window_s": 5, "cooldown_s": 0.5}, "max_concurrent": 64, "max_queue": 256,
    }
    config = {
        "server": {"max_clients": 200 + slow_streams, "dashboard": False, "max_response_bytes": MAX_RESPONSE_BYTES},
        "log": {"requests": os.path.join(workdir, "requests.jsonl")},
        "providers": {
            "flaky_oai": {"kind": "openai", "base_url": f"http://{HOST}:{faulty}/v1", **flaky},
            "flaky_ant": {"kind": "anthropic", "base_url": f"http://{HOST}:{faulty}", **flaky},
            "good_oai": {"kind": "openai", "base_url": f"http://{HOST}:{good}/v1", "api_key": "sk-soak"},
            "good_ant": {"kind": "anthropic", "base_url": f"http://{HOST}:{good}", "api_key": "sk-soak"},
        },
        "router": {"routes": [
            {"model": "fb-oai", "to": ["flaky_oai/gpt-4o-mini", "good_ant/claude-haiku-4-5"]},
            {"model": "fb-ant", "to": ["flaky_ant/claude-haiku-4-5", "good_oai/gpt-4o-mini"]},
            {"model": "cont", "to": ["flaky_ant/claude-haiku-4-5", "good_ant/claude-haiku-4-5"], "continue_on_failure": True},
            {"model": "solo-oai", "to": "flaky_oai/gpt-4o-mini"},
            {"model": "solo-ant", "to": "flaky_ant/claude-haiku-4-5"},
            {"model": "good", "to": "good_oai/gpt-4o-mini"},
            {"model": "slow", "to": "good_oai/gpt-slow"},
        ]},
    }
    path = os.path.join(workdir, "router.yaml")
    with open(path, "w", encoding="utf-8") as f:
        yaml.safe_dump(config, f, sort_keys=False)
    return path


# --- the traffic ------------------------------------------------------------------------


@dataclass
class Run:
    args: argparse.Namespace
    port: int
    rng: random.Random
    started: float = field(default_factory=time.perf_counter)
    sent: int = 0
    done: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    samples: list[str] = field(default_factory=list)  # one example per kind of failure
    traffic_done: bool = False  # the slow streams stop once the traffic has
    open_rss_kib: int | None = None  # the router's RSS once the slow streams are open

    def take(self) -> bool:
        """Claim the next request, while the run's budget lasts."""
        args = self.args
        if args.duration is not None and time.perf_counter() - self.started >= args.duration:
            return False
        if args.duration is None and self.sent >= args.requests:
            return False
        self.sent += 1
        return True

    def count(self, outcome: str, sample: str | None = None) -> None:
        self.done += 1
        if sample is not None and outcome not in self.outcomes and len(self.samples) < 20:
            self.samples.append(f"{outcome}: {sample[:300]}")
        self.outcomes[outcome] += 1


def request_bytes(path: str, model: str, stream: bool, number: int) -> bytes:
    body: dict[str, Any] = {"model": model, "messages": [{"role": "user", "content": f"soak request {number}"}]}
    if path == ANTHROPIC_PATH:
        body["max_tokens"] = 64
    if stream:
        body["stream"] = True
    data = json.dumps(body, separators=(",", ":")).encode()
    head = f"POST {path} HTTP/1.1\r\nHost: {HOST}\r\nContent-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n"
    return head.encode() + data


def classify(path: str, stream: bool, status: int, body: bytes) -> tuple[str, str | None]:
    if status != 200:
        return f"{status}", body.decode("utf-8", "replace")
    if not stream:
        return "200", None
    fmt = "openai" if path == OPENAI_PATH else "anthropic"
    problems = validate(body, fmt)
    if problems:
        return "200 ill-formed stream", "; ".join(problems[:3])
    events = [e for e in SSEDecoder().feed(body) if e.data != "[DONE]"]
    last = json.loads(events[-1].data) if events else {}
    if (fmt == "anthropic" and last.get("type") == "error") or (fmt == "openai" and "error" in last):
        return "200 stream ended by an error event", events[-1].data
    return "200 stream", None


async def worker(run: Run) -> None:
    args, rng = run.args, run.rng
    loop = asyncio.get_running_loop()
    conn: _Connection | None = None
    try:
        while run.take():
            path = rng.choice([OPENAI_PATH, ANTHROPIC_PATH])
            stream = rng.random() < args.stream_share
            payload = request_bytes(path, rng.choice(MODELS), stream, run.sent)
            try:
                if conn is None or conn.closed:
                    _, conn = await loop.create_connection(lambda: _Connection(None), HOST, run.port)
                waiter = conn.request(payload)
                if rng.random() < args.hangup_share:  # a client that goes away mid-request
                    await asyncio.sleep(rng.random() * 0.05)
                    conn.close()
                    conn = None
                    run.count("client hung up")
                    continue
                response = await asyncio.wait_for(waiter, args.request_timeout)
            except (OSError, asyncio.TimeoutError) as exc:
                if conn is not None:
                    conn.close()
                conn = None
                run.count("connection error", f"{type(exc).__name__}: {exc}")
                continue
            outcome, sample = classify(path, stream, response.status, response.body)
            run.count(outcome, sample)
    finally:
        if conn is not None:
            conn.close()


async def slow_worker(run: Run) -> None:
    """One slow stream after another on a connection of its own, until the traffic is done."""
    loop = asyncio.get_running_loop()
    payload = request_bytes(OPENAI_PATH, "slow", True, 0)
    conn: _Connection | None = None
    try:
        while not run.traffic_done:
            try:
                if conn is None or conn.closed:
                    _, conn = await loop.create_connection(lambda: _Connection(None), HOST, run.port)
                response = await asyncio.wait_for(conn.request(payload), run.args.request_timeout + 60)
            except (OSError, asyncio.TimeoutError) as exc:
                if conn is not None:
                    conn.close()
                conn = None
                run.count("slow stream: connection error", f"{type(exc).__name__}: {exc}")
                continue
            outcome, sample = classify(OPENAI_PATH, True, response.status, response.body)
            run.count(f"slow {outcome}", sample)
    finally:
        if conn is not None:
            conn.close()


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of process ``pid`` so far."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_kib(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def mib(kib: int | None) -> str:
    return "?" if kib is None else f"{kib / 1024:.1f} MiB"


async def drive(run: Run, router_pid: int) -> list[tuple[float, int, int | None]]:
    """Run the workers; sample the router's RSS every ``--sample-every`` seconds."""
    rss: list[tuple[float, int, int | None]] = [(0.0, 0, rss_kib(router_pid))]
    print(f"  t=   0s  requests=      0  rss={mib(rss[0][2])}", file=sys.stderr, flush=True)
    slow = [asyncio.create_task(slow_worker(run)) for _ in range(run.args.slow_streams)]
    if slow:  # all open (an event comes every --slow-event-s), before the traffic starts
        await asyncio.sleep(max(3.0, 3 * run.args.slow_event_s))
        run.open_rss_kib = rss_kib(router_pid)
        print(f"  {len(slow)} slow streams open: rss={mib(run.open_rss_kib)}", file=sys.stderr, flush=True)
    workers = [asyncio.create_task(worker(run)) for _ in range(run.args.concurrency)]
    last_done, last_t = 0, time.perf_counter()
    while True:
        finished, _ = await asyncio.wait(workers, timeout=run.args.sample_every)
        now = time.perf_counter()
        sample = (now - run.started, run.done, rss_kib(router_pid))
        rss.append(sample)
        rate = (run.done - last_done) / (now - last_t)
        last_done, last_t = run.done, now
        print(f"  t={sample[0]:4.0f}s  requests={run.done:7d}  {rate:6.0f}/s  rss={mib(sample[2])}", file=sys.stderr, flush=True)
        if len(finished) == len(workers):
            break
    run.traffic_done = True
    await asyncio.gather(*slow)  # each ends its stream: a bug in the soak itself must not pass unnoticed
    for task in workers:
        task.result()
    return rss


async def soak(args: argparse.Namespace, workdir: str) -> dict[str, Any]:
    faulty, good = FakeUpstream(), FakeUpstream()
    faulty.chooser = fault_chooser(args.faults, random.Random(args.seed))
    good.chooser = slow_chooser(args.slow_event_s)
    for upstream in (faulty, good):
        upstream.keep_requests = False
        upstream.start()
    server_cpus, client_cpus = cpu_plan()
    port = free_port()
    conf = router_config(workdir, faulty.port, good.port, args.slow_streams)
    router = Service("router", [sys.executable, "-m", "tornrouter", "--conf", conf, "--port", str(port)], server_cpus, workdir, port)
    try:
        await asyncio.get_running_loop().run_in_executor(None, router.wait_healthy)
        if client_cpus:
            os.sched_setaffinity(0, client_cpus)
        run = Run(args, port, random.Random(args.seed + 1))
        rss = await drive(run, router.proc.pid)
        seconds = time.perf_counter() - run.started
        cpu = {"router": cpu_seconds(router.proc.pid), "soak (load + upstream)": cpu_seconds(os.getpid())}
    finally:
        router.stop()  # SIGTERM: the router drains and writes its request log out
        for upstream in (faulty, good):
            await upstream.stop()
    with open(router.log_path, encoding="utf-8", errors="replace") as f:
        tracebacks = f.read().count("Traceback (most recent call last)")
    return {
        "requests": run.done,
        "seconds": round(seconds, 1),
        "rate": round(run.done / seconds, 1),
        "concurrency": args.concurrency,
        "outcomes": dict(sorted(run.outcomes.items(), key=lambda kv: (-kv[1], kv[0]))),
        "samples": run.samples,
        "rss_kib": [{"t": round(t, 1), "requests": n, "rss_kib": kib} for t, n, kib in rss],
        "upstream_requests": {"faulty": faulty.served, "good": good.served},
        "request_log_entries": count_lines(os.path.join(workdir, "requests.jsonl")),
        "request_log": log_summary(os.path.join(workdir, "requests.jsonl")),
        "router_tracebacks": tracebacks,
        "cpu_seconds": cpu,
        "faults": args.faults,
        "slow_streams": args.slow_streams,
        "slow_streams_rss_kib": run.open_rss_kib,
    }


def log_summary(path: str) -> dict[str, int]:
    """What the request log says about the safety nets."""
    summary: Counter[str] = Counter()
    try:
        with open(path, encoding="utf-8") as f:
            for line in f:
                entry = json.loads(line)
                attempts = entry.get("attempts") or []
                if entry.get("status") == 200 and len(attempts) > 1:
                    summary["answered after a retry or failover"] += 1
                if any(a.get("error") == "skipped: circuit open" for a in attempts):
                    summary["skipped a target with an open circuit"] += 1
                continued = entry.get("continued")
                if continued:
                    summary["streams continued" if continued.get("to") else "streams that could not continue"] += 1
                if entry.get("cancelled"):
                    summary["cancelled (client went away)"] += 1
    except FileNotFoundError:
        pass
    return dict(summary)


def report(results: dict[str, Any]) -> str:
    rss = results["rss_kib"]
    lines = [
        f"soak: {results['requests']} requests in {results['seconds']:g} s = {results['rate']:.0f} requests/s"
        f" (concurrency {results['concurrency']})",
        f"upstream requests: {results['upstream_requests']['faulty']} to the faulty upstream,"
        f" {results['upstream_requests']['good']} to the good one",
        "outcomes:",
        *(f"  {count:8d}  {outcome}" for outcome, count in results["outcomes"].items()),
        f"router RSS: start {mib(rss[0]['rss_kib'])}, end {mib(rss[-1]['rss_kib'])},"
        f" max {mib(max((s['rss_kib'] or 0) for s in rss))}",
        *([f"with {results['slow_streams']} slow streams open: {mib(results['slow_streams_rss_kib'])},"
           f" {(results['slow_streams_rss_kib'] - rss[0]['rss_kib']) / results['slow_streams']:.0f} KiB per open stream"
           f" over the idle router"] if results["slow_streams"] and results["slow_streams_rss_kib"] else []),
        f"request log: {results['request_log_entries']} entries for {results['requests']} requests",
        *(f"  {count:8d}  {what}" for what, count in results["request_log"].items()),
        f"router tracebacks: {results['router_tracebacks']}",
        "CPU seconds: " + ", ".join(f"{name} {value:.1f}" for name, value in results["cpu_seconds"].items() if value is not None),
    ]
    if results["samples"]:
        lines.append("a sample of each failure:")
        lines += [f"  {s}" for s in results["samples"]]
    return "\n".join(lines)


# --- command line ------------------------------------------------------------------------


def fault_weights(text: str) -> dict[str, float]:
    weights = dict(FAULTS)
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, sep, value = item.partition("=")
        if not sep or name not in FAULTS:
            raise argparse.ArgumentTypeError(f"expected name=weight with a name of {', '.join(FAULTS)}; got {item!r}")
        try:
            weights[name] = float(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name}: not a number: {value!r}") from None
    if sum(weights.values()) <= 0:
        raise argparse.ArgumentTypeError("the weights add up to nothing")
    return weights


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    budget = parser.add_mutually_exclusive_group()
    budget.add_argument("--requests", type=int, default=10000, help="how many requests (default 10000)")
    budget.add_argument("--duration", type=float, help="run for this many seconds instead")
    parser.add_argument("--concurrency", type=int, default=64, help="requests in flight at once (default 64)")
    parser.add_argument("--faults", type=fault_weights, default=dict(FAULTS),
                        help="weights, e.g. ok=60,500=4,stall=1 (unnamed keep their default; see FAULTS)")
    parser.add_argument("--stream-share", type=float, default=0.5, help="share of streamed requests (default 0.5)")
    parser.add_argument("--hangup-share", type=float, default=0.01, help="share of clients hanging up (default 0.01)")
    parser.add_argument("--request-timeout", type=float, default=30.0, help="a client gives up after this (default 30 s)")
    parser.add_argument("--sample-every", type=float, default=10.0, help="seconds between RSS samples (default 10)")
    parser.add_argument("--slow-streams", type=int, default=0, help="slow streams kept open throughout (default 0)")
    parser.add_argument("--slow-event-s", type=float, default=0.25, help="seconds between a slow stream's events (default 0.25)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON to PATH")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (config, router output, request log)")
    return parser.parse_args(argv)


def _terminate(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # unwinds through every finally: the router gets stopped


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    logging.getLogger("tornado.access").disabled = True  # the fake upstream's access log: thousands of error lines
    workdir = tempfile.mkdtemp(prefix="tornrouter-soak-")
    budget = f"{args.duration:g} s" if args.duration is not None else f"{args.requests} requests"
    print(f"tornrouter soak: {budget}, concurrency {args.concurrency}", file=sys.stderr, flush=True)
    try:
        results = asyncio.run(soak(args, workdir))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except RuntimeError as exc:
        print(f"soak failed: {exc}", file=sys.stderr)
        return 1
    finally:
        if args.keep:
            print(f"kept {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    print(report(results))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(results, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
