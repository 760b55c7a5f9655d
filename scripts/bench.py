"""Benchmark the router against a minimal relay and against the upstream itself.

Starts, on loopback, the fast fake upstream (``bench_upstream.py``), the
baseline relay (``relay_baseline.py``: Tornado + curl, parse JSON and forward)
and the router (``python -m tornrouter``, request log on, in a temp dir), then
drives each with the closed-loop load generator (``loadgen.py``, in this
process) at each concurrency and prints one row per cell:

    target    the upstream directly (the load generator's ceiling), the baseline relay, the router,
              and the router answering from its response cache (``cache``: the same router, a
              route with ``cache:``; every request after the cell's first is a hit, which makes
              no upstream call at all)
    endpoint  openai = POST /v1/chat/completions to an OpenAI-kind provider,
              anthropic = POST /v1/messages to an Anthropic-kind provider,
              responses = POST /v1/responses to an openai-responses-kind provider,
              openai->anthropic, anthropic->openai, responses->openai, responses->anthropic
              = the cross-format routes (router only)
    vs base   router requests/s over the baseline relay's for the same client
              endpoint and concurrency (target: >= 60%; a cache hit should beat the relay)

With two or more CPUs, the router and the relay run on the first, the load
generator and the upstream on the second, so the server under test has a core
to itself.  Every process started here is in its own process group and is
killed with it on the way out, Ctrl-C and SIGTERM included.

    python scripts/bench.py [--duration 5] [--concurrency 1,8,64] [--stream [--paced]] [--plugins N] [--json out.json]

``--stream`` sends ``"stream": true`` and reports, for answers of 16, 60 and
500 text deltas (``--stream-tokens``), streams/s, time to first token (the
first text delta on the wire) and the server's CPU time per text delta, and
sums up what the router adds to the relay's: CPU microseconds per event and
time to first token.  The upstream answers at once by default, which measures
the cost per stream; ``--paced`` makes it answer as a model does (first token
after 50 ms, then one event every 5 ms) with the streams of a round started
together, which shows how long events wait for each other.
``--plugins 4`` puts four ``system_prompt`` plugins in the router's pipeline,
which shows what the plugin stages cost per request.  ``--processes 2`` runs
the router with two workers, unpinned (on two cores they share one with the
load generator); CPU time and request logs are summed over the workers.
Every row has the server's peak RSS over the cell; both servers get as many
curl handles as the highest concurrency asks for, so none waits for one.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import glob
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass

import yaml

from loadgen import CellResult, Target, percentile, run_cell

SCRIPTS = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(SCRIPTS)
HOST = "127.0.0.1"
TARGETS = ("upstream", "baseline", "router", "cache")
ROUTERS = ("router", "cache")  # the targets the router process serves
RATIO_GOAL = 0.60
CACHED = "cache-"  # a model name with this prefix goes to a route with the response cache on

OPENAI_PATH = "/v1/chat/completions"
ANTHROPIC_PATH = "/v1/messages"
RESPONSES_PATH = "/v1/responses"


@dataclass(frozen=True)
class Endpoint:
    """A client-facing API and the provider kind the router sends it to."""

    name: str
    path: str  # what the client calls
    model: str  # picks the provider through the router's routes
    usage: bool = False  # an OpenAI stream asks for its usage (the cache stores no stream without it)

    @property
    def same_format(self) -> bool:
        return "->" not in self.name

    def body(self, stream: bool, tokens: int) -> bytes:
        if self.path == RESPONSES_PATH:
            request: dict[str, object] = {
                "model": self.model,
                "instructions": "You are a terse assistant.",
                "input": "Say hello in one short sentence.",
                "max_output_tokens": tokens,
                "temperature": 0.2,
                "store": False,  # as Codex sends it: the relay keeps nothing either
            }
        elif self.path == OPENAI_PATH:
            request = {
                "model": self.model,
                "messages": [
                    {"role": "system", "content": "You are a terse assistant."},
                    {"role": "user", "content": "Say hello in one short sentence."},
                ],
                "max_tokens": tokens,  # the benchmark upstream streams this many text deltas
                "temperature": 0.2,
            }
        else:
            request = {
                "model": self.model,
                "max_tokens": tokens,
                "system": "You are a terse assistant.",
                "messages": [{"role": "user", "content": "Say hello in one short sentence."}],
                "temperature": 0.2,
            }
        if stream:
            request["stream"] = True
            if self.usage and self.path == OPENAI_PATH:
                request["stream_options"] = {"include_usage": True}
        return json.dumps(request, separators=(",", ":")).encode()

    def target(self, port: int, stream: bool, tokens: int = 64) -> Target:
        if self.path == RESPONSES_PATH:
            headers = (("Authorization", "Bearer x"),)
            expect = b"event: response.completed" if stream else b'"status":"completed"'
            first_token = re.compile(rb"event: response\.output_text\.delta") if stream else None
        elif self.path == OPENAI_PATH:
            headers = (("Authorization", "Bearer x"),)
            expect = b"data: [DONE]" if stream else b"chat.completion"
            first_token = re.compile(rb'"content":\s*"[^"]') if stream else None
        else:
            headers = (("x-api-key", "x"), ("anthropic-version", "2023-06-01"))
            expect = b"message_stop" if stream else b"end_turn"
            first_token = re.compile(rb"text_delta") if stream else None
        return Target(HOST, port, self.path, self.body(stream, tokens), headers, expect, first_token)


ENDPOINTS = (
    Endpoint("openai", OPENAI_PATH, "gpt-4o-mini"),
    Endpoint("anthropic", ANTHROPIC_PATH, "claude-haiku-4-5"),
    Endpoint("responses", RESPONSES_PATH, "resp-gpt-5-mini"),
    Endpoint("openai->anthropic", OPENAI_PATH, "claude-haiku-4-5"),
    Endpoint("anthropic->openai", ANTHROPIC_PATH, "gpt-4o-mini"),
    Endpoint("responses->openai", RESPONSES_PATH, "gpt-4o-mini"),
    Endpoint("responses->anthropic", RESPONSES_PATH, "claude-haiku-4-5"),
)


@dataclass
class Row:
    target: str
    endpoint: str
    stream_tokens: int | None  # text deltas per streamed answer
    concurrency: int
    rate: float  # requests (or streams) per second
    p50_ms: float | None
    p99_ms: float | None
    ttft_p50_ms: float | None
    ttft_p99_ms: float | None
    requests: int
    errors: int
    error_samples: list[str]
    cpu_us_per_request: float | None = None  # the server's CPU time per request (or stream)
    cpu_us_per_event: float | None = None  # the same per text delta (streams)
    rss_mib: float | None = None  # the server's peak resident memory over the window, workers included
    vs_baseline: float | None = None


def _ms(value: float | None) -> float | None:
    return None if value is None else value * 1000


def make_row(target: str, endpoint: Endpoint, tokens: int | None, concurrency: int, result: CellResult) -> Row:
    return Row(
        target=target,
        endpoint=endpoint.name,
        stream_tokens=tokens,
        concurrency=concurrency,
        rate=result.rate,
        p50_ms=_ms(percentile(result.latencies, 50)),
        p99_ms=_ms(percentile(result.latencies, 99)),
        ttft_p50_ms=_ms(percentile(result.ttfts, 50)),
        ttft_p99_ms=_ms(percentile(result.ttfts, 99)),
        requests=result.requests,
        errors=result.errors,
        error_samples=result.error_samples,
    )


# --- processes ----------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def cpu_plan() -> tuple[set[int] | None, set[int] | None]:
    """(server CPUs, client CPUs): the first two CPUs this process may use, or no
    pinning at all on a single CPU."""
    allowed = sorted(os.sched_getaffinity(0))
    if len(allowed) < 2:
        return None, None
    return {allowed[0]}, {allowed[1]}


class Service:
    """A child process in its own process group, pinned, output to a file."""

    def __init__(self, name: str, argv: list[str], cpus: set[int] | None, workdir: str, port: int) -> None:
        self.name = name
        self.port = port
        self.log_path = os.path.join(workdir, f"{name}.log")
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                argv,
                cwd=REPO,
                env={**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [REPO, os.environ.get("PYTHONPATH")]))},
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own group: killed as one, deaf to the terminal's Ctrl-C
                # Pinned before exec, so every thread it ever starts inherits the
                # mask (this process has no threads of its own to upset a fork).
                preexec_fn=(lambda: os.sched_setaffinity(0, cpus)) if cpus else None,
            )

    def wait_healthy(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n{self.output_tail()}")
            try:
                conn = http.client.HTTPConnection(HOST, self.port, timeout=2)
                conn.request("GET", "/health")
                if conn.getresponse().status == 200:
                    conn.close()
                    return
                conn.close()
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} not healthy after {timeout:g} s:\n{self.output_tail()}")
            time.sleep(0.1)

    def cpu_seconds(self) -> float:
        """User and system time so far of the process and its live children
        (``--processes`` workers), all their threads (Linux)."""
        return sum(_cpu_seconds(pid) for pid in [self.proc.pid, *_children(self.proc.pid)])

    def rss_mib(self) -> float:
        """Resident memory of the process and its live children, in MiB (Linux)."""
        return sum(_rss_mib(pid) for pid in [self.proc.pid, *_children(self.proc.pid)])

    def output_tail(self, lines: int = 30) -> str:
        with open(self.log_path, encoding="utf-8", errors="replace") as f:
            return "".join(f.readlines()[-lines:])

    def stop(self) -> None:
        """SIGTERM to the group, SIGKILL if it lingers."""
        if self.proc.poll() is not None:
            return
        for sig, wait in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                return
            try:
                self.proc.wait(wait)
                return
            except subprocess.TimeoutExpired:
                continue


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children", encoding="ascii") as f:
            return [int(child) for child in f.read().split()]
    except OSError:
        return []


def _cpu_seconds(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            fields = f.read().rpartition(")")[2].split()
    except OSError:  # it has just exited
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _rss_mib(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/statm", encoding="ascii") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:  # it has just exited
        return 0.0


def router_config(workdir: str, upstream_port: int, plugins: int = 0, max_clients: int = 200) -> str:
    """The router's config: a provider of each kind on the upstream, and
    ``plugins`` entries of the built-in ``system_prompt`` (each rewrites every
    request, so the pipeline's per-plugin cost shows in the figures)."""
    path = os.path.join(workdir, "router.yaml")
    config = {
        "server": {"max_clients": max_clients},
        "log": {"requests": os.path.join(workdir, "requests.jsonl")},
        "providers": {
            "oai": {"kind": "openai", "base_url": f"http://{HOST}:{upstream_port}/v1", "api_key": "x"},
            "ant": {"kind": "anthropic", "base_url": f"http://{HOST}:{upstream_port}", "api_key": "x"},
            "oresp": {"kind": "openai-responses", "base_url": f"http://{HOST}:{upstream_port}/v1", "api_key": "x"},
        },
        "router": {"routes": [
            {"model": "resp-*", "to": "oresp/gpt-5-mini"},
            {"model": "gpt-*", "to": "oai"},
            {"model": "claude-*", "to": "ant"},
            # The cache target: the same upstreams, answers kept.  The benchmark's
            # requests sample (temperature 0.2), so the rule must allow it.
            {"model": f"{CACHED}gpt-*", "to": "oai/gpt-4o-mini", "cache": {"ttl_s": 3600, "nondeterministic": True}},
            {"model": f"{CACHED}claude-*", "to": "ant/claude-haiku-4-5", "cache": {"ttl_s": 3600, "nondeterministic": True}},
            {"model": f"{CACHED}resp-*", "to": "oresp/gpt-5-mini", "cache": {"ttl_s": 3600, "nondeterministic": True}},
        ]},
        "plugins": [{"use": "system_prompt", "settings": {"text": f"House rule {i}."}} for i in range(plugins)],
    }
    with open(path, "w", encoding="utf-8") as f:
        yaml.safe_dump(config, f, sort_keys=False)
    return path


@contextmanager
def services(targets: tuple[str, ...], workdir: str, args: argparse.Namespace) -> Iterator[dict[str, Service]]:
    """The upstream plus whichever servers ``targets`` names, healthy; all
    stopped on exit however it happens."""
    server_cpus, client_cpus = cpu_plan()
    py = sys.executable
    with ExitStack() as stack:
        started: dict[str, Service] = {}

        def start(name: str, argv: list[str], cpus: set[int] | None, port: int) -> None:
            service = Service(name, argv, cpus, workdir, port)
            stack.callback(service.stop)
            started[name] = service

        upstream_transfers = max(200, *args.concurrency)  # no request waits for a curl handle
        up = free_port()
        start(
            "upstream",
            [py, os.path.join(SCRIPTS, "bench_upstream.py"), "--port", str(up),
             "--first-token-ms", str(args.first_token_ms), "--token-delay-ms", str(args.token_delay_ms)],
            client_cpus,
            up,
        )
        if "baseline" in targets:
            port = free_port()
            start(
                "baseline",
                [py, os.path.join(SCRIPTS, "relay_baseline.py"), "--port", str(port),
                 "--upstream", f"http://{HOST}:{up}", "--max-clients", str(upstream_transfers)],
                server_cpus,
                port,
            )
        if any(name in targets for name in ROUTERS):
            port = free_port()
            conf = router_config(workdir, up, args.plugins, upstream_transfers)
            argv = [py, "-m", "tornrouter", "--conf", conf, "--port", str(port), "--processes", str(args.processes)]
            # Workers get every CPU: on 2 cores, the load generator shares theirs.
            start("router", argv, server_cpus if args.processes == 1 else None, port)
        for service in started.values():
            service.wait_healthy()
        if client_cpus:
            os.sched_setaffinity(0, client_cpus)
        yield started


# --- measuring ------------------------------------------------------------------------


async def measure(
    services_by_name: dict[str, Service], targets: tuple[str, ...], endpoints: list[Endpoint], args: argparse.Namespace
) -> list[Row]:
    rows: list[Row] = []
    sizes = args.stream_tokens if args.stream else [None]
    for endpoint in endpoints:
        for tokens in sizes:
            for concurrency in args.concurrency:
                for name in targets:
                    if name != "router" and not endpoint.same_format:
                        continue  # only the router translates (a hit translates no upstream request)
                    service = services_by_name["router" if name == "cache" else name]
                    rows.append(await measure_cell(service, name, endpoint, tokens, concurrency, args))
    baseline = {(r.endpoint, r.stream_tokens, r.concurrency): r.rate for r in rows if r.target == "baseline"}
    path_of = {e.name: e.path for e in ENDPOINTS}
    same_format_name = {e.path: e.name for e in ENDPOINTS if e.same_format}
    for row in rows:
        base = baseline.get((same_format_name[path_of[row.endpoint]], row.stream_tokens, row.concurrency))
        if row.target in ROUTERS and base:
            row.vs_baseline = row.rate / base
    return rows


async def measure_cell(
    service: Service, name: str, endpoint: Endpoint, tokens: int | None, concurrency: int, args: argparse.Namespace
) -> Row:
    """One cell, with the server's CPU time over the measured window (streams)."""
    if name == "cache":  # the same requests, to the route that keeps answers
        endpoint = dataclasses.replace(endpoint, model=CACHED + endpoint.model, usage=True)
    target = endpoint.target(service.port, args.stream, tokens or 64)

    async def cpu_and_rss_in_window() -> tuple[float, float]:
        await asyncio.sleep(args.warmup)
        start, end, peak = service.cpu_seconds(), time.monotonic() + args.duration, 0.0
        while time.monotonic() < end:
            peak = max(peak, service.rss_mib())
            await asyncio.sleep(min(0.25, max(0.0, end - time.monotonic())))
        return service.cpu_seconds() - start, peak

    sampled = asyncio.ensure_future(cpu_and_rss_in_window())
    result = await run_cell(target, concurrency, args.duration, args.warmup, synchronized=args.paced)
    row = make_row(name, endpoint, tokens, concurrency, result)
    cpu_s, row.rss_mib = await sampled
    if result.requests and name != "upstream":
        row.cpu_us_per_request = cpu_s / result.requests * 1e6
        if tokens:
            row.cpu_us_per_event = row.cpu_us_per_request / tokens
    size = f" {tokens} tokens" if tokens else ""
    print(f"  {name:<9} {endpoint.name:<18}{size} c={concurrency:<3} {row.rate:9.0f}/s  errors {row.errors}",
          file=sys.stderr, flush=True)
    return row


def _cell(value: float | None, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def format_table(rows: list[Row], stream: bool) -> str:
    rate = "streams/s" if stream else "requests/s"
    header = ["target", "endpoint"] + (["tokens"] if stream else []) + ["conc", rate]
    if stream:
        header += ["ttft p50 ms", "ttft p99 ms", "cpu us/event"]
    else:
        header += ["cpu us/req"]
    header += ["rss MiB", "p50 ms", "p99 ms", "errors", "vs baseline"]
    table = [header]
    for r in rows:
        line = [r.target, r.endpoint] + ([str(r.stream_tokens)] if stream else []) + [str(r.concurrency), f"{r.rate:.0f}"]
        if stream:
            line += [_cell(r.ttft_p50_ms, ".2f"), _cell(r.ttft_p99_ms, ".2f"), _cell(r.cpu_us_per_event, ".1f")]
        else:
            line += [_cell(r.cpu_us_per_request, ".0f")]
        ratio = "-"
        if r.vs_baseline is not None:
            # Truncated, not rounded: 59.8% must not print as a passing "60%".
            goal = 1.0 if r.target == "cache" else RATIO_GOAL  # a hit has no upstream call: it should beat the relay
            ratio = f"{int(r.vs_baseline * 100)}%" + ("" if r.vs_baseline >= goal else " LOW")
        line += [_cell(r.rss_mib, ".0f"), _cell(r.p50_ms, ".2f"), _cell(r.p99_ms, ".2f"), str(r.errors), ratio]
        table.append(line)
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    left = {0, 1}
    out = []
    for n, row in enumerate(table):
        out.append("  ".join(c.ljust(w) if i in left else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))))
        if n == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


def summary(rows: list[Row]) -> list[str]:
    lines = []
    ratios = [r for r in rows if r.vs_baseline is not None and r.target == "router"]
    if ratios:
        low = [r for r in ratios if r.vs_baseline < RATIO_GOAL]
        worst = min(ratios, key=lambda r: r.vs_baseline)
        lines.append(
            f"router vs baseline: {len(ratios) - len(low)}/{len(ratios)} rows at >= {RATIO_GOAL:.0%}; "
            f"lowest {int(worst.vs_baseline * 100)}% ({worst.endpoint}, c={worst.concurrency})"
        )
    hits = [r for r in rows if r.vs_baseline is not None and r.target == "cache"]
    if hits:
        lines.append("cache hits vs baseline relay: " + ", ".join(
            f"{r.endpoint} c={r.concurrency} {r.vs_baseline:.2f}x" for r in hits))
    lines += added_by_router(rows)
    for r in rows:
        for sample in r.error_samples:
            lines.append(f"error sample [{r.target} {r.endpoint} c={r.concurrency}]: {sample}")
    return lines


def added_by_router(rows: list[Row]) -> list[str]:
    """For streams: what the router adds to the relay for the same client API,
    size and concurrency (CPU per event, time to first token at p50 and p99)."""
    path_of = {e.name: e.path for e in ENDPOINTS}
    same_format_name = {e.path: e.name for e in ENDPOINTS if e.same_format}
    relay = {(r.endpoint, r.stream_tokens, r.concurrency): r for r in rows if r.target == "baseline"}
    lines = []
    for r in rows:
        base = relay.get((same_format_name[path_of[r.endpoint]], r.stream_tokens, r.concurrency))
        if r.target != "router" or base is None or r.stream_tokens is None:
            continue
        parts = []
        # /proc counts CPU time in clock ticks (10 ms): a short cell may see none at all
        if r.cpu_us_per_event is not None and base.cpu_us_per_event:
            parts.append(f"cpu {r.cpu_us_per_event - base.cpu_us_per_event:+.1f} us/event "
                         f"({r.cpu_us_per_event / base.cpu_us_per_event:.2f}x)")
        for q in ("p50", "p99"):
            mine, theirs = getattr(r, f"ttft_{q}_ms"), getattr(base, f"ttft_{q}_ms")
            if mine is not None and theirs is not None:
                parts.append(f"ttft {q} {mine - theirs:+.2f} ms")
        if parts:
            lines.append(f"router adds [{r.endpoint} {r.stream_tokens} tokens c={r.concurrency}]: {', '.join(parts)}")
    return lines


def count_lines(path: str, containing: bytes = b"") -> int:
    try:
        with open(path, "rb") as f:
            return sum(1 for line in f if containing in line)
    except FileNotFoundError:
        return 0


# --- command line ------------------------------------------------------------------------


def _int_list(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected integers separated by commas, got {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError("concurrency levels must be >= 1")
    return values


def _name_list(choices: tuple[str, ...]) -> Callable[[str], list[str]]:
    """An argparse type: a comma-separated subset of ``choices``."""

    def parse(text: str) -> list[str]:
        names = [v.strip() for v in text.split(",") if v.strip()]
        unknown = [n for n in names if n not in choices]
        if unknown or not names:
            raise argparse.ArgumentTypeError(f"choose from {', '.join(choices)}")
        return names

    return parse


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=5.0, help="measured seconds per cell (default 5)")
    parser.add_argument("--warmup", type=float, default=1.0, help="unmeasured seconds before each cell (default 1)")
    parser.add_argument("--concurrency", type=_int_list, default=[1, 8, 64], help="comma-separated (default 1,8,64)")
    parser.add_argument(
        "--targets", type=_name_list(TARGETS), default=list(TARGETS), help="subset of " + ",".join(TARGETS)
    )
    names = tuple(e.name for e in ENDPOINTS)
    parser.add_argument("--endpoints", type=_name_list(names), default=list(names), help="subset of " + ",".join(names))
    parser.add_argument(
        "--stream", action="store_true", help='send "stream": true; report streams/s and time to first token'
    )
    parser.add_argument("--stream-tokens", type=_int_list, default=[16, 60, 500],
                        help="text deltas per streamed answer, comma-separated (default 16,60,500)")
    parser.add_argument("--paced", action="store_true",
                        help="the upstream paces its events (first after 50 ms, then every 5 ms) and the "
                             "streams of a round start together")
    parser.add_argument("--first-token-ms", type=float, default=None, help="upstream pause before a stream's first event")
    parser.add_argument("--token-delay-ms", type=float, default=None, help="upstream pause before each later event")
    parser.add_argument(
        "--plugins", type=int, default=0, help="system_prompt plugin entries in the router's pipeline (default 0)"
    )
    parser.add_argument("--processes", type=int, default=1,
                        help="the router's --processes: with more than 1, its workers are not pinned (default 1)")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON to PATH")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (configs, process output, request log)")
    args = parser.parse_args(argv)
    paced = (50.0, 5.0) if args.paced else (0.0, 0.0)
    args.first_token_ms = paced[0] if args.first_token_ms is None else args.first_token_ms
    args.token_delay_ms = paced[1] if args.token_delay_ms is None else args.token_delay_ms
    return args


def _terminate(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # unwinds through every finally: the children get stopped


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    targets = tuple(t for t in TARGETS if t in args.targets)  # fixed order: upstream, baseline, router, cache
    endpoints = [e for e in ENDPOINTS if e.name in args.endpoints]
    workdir = tempfile.mkdtemp(prefix="tornrouter-bench-")
    server_cpus, client_cpus = cpu_plan()
    if server_cpus and client_cpus:
        pinning = f"servers on CPU {min(server_cpus)}, load generator + upstream on CPU {min(client_cpus)}"
        if args.processes > 1:
            pinning += f"; the router's {args.processes} workers on every CPU, sharing with the load generator"
    else:
        pinning = "no CPU pinning (fewer than 2 CPUs)"
    print(f"tornrouter bench: {args.duration:g} s per cell after {args.warmup:g} s warmup; {pinning}", file=sys.stderr)
    load = os.getloadavg()[0]
    if load > 0.5:  # the numbers are only worth comparing on an otherwise idle machine
        print(f"warning: load average {load:.2f}: other processes compete for the CPUs", file=sys.stderr)
    try:
        with services(targets, workdir, args) as running:
            rows = asyncio.run(measure(running, targets, endpoints, args))
        mode = "streaming" if args.stream else "non-streaming"
        print(f"\n{mode}, {args.duration:g} s per cell, Python {sys.version.split()[0]}")
        print(format_table(rows, args.stream))
        for line in summary(rows):
            print(line)
        log_entries = cache_hits = None
        if any(name in targets for name in ROUTERS):  # read after the router has stopped, so its log is flushed
            # requests.jsonl, or with --processes one file a worker (requests.<worker>.jsonl)
            logs = glob.glob(os.path.join(workdir, "requests*.jsonl"))
            log_entries = sum(count_lines(path) for path in logs)
            cache_hits = sum(count_lines(path, b'"cache":{"outcome":"hit"') for path in logs)
            print(f"router request log: {log_entries} entries, {cache_hits} answered from the cache")
        if args.json:
            results = {"stream": args.stream, "duration": args.duration, "request_log_entries": log_entries,
                       "cache_hits": cache_hits, "rows": [asdict(r) for r in rows]}
            with open(args.json, "w", encoding="utf-8") as f:
                json.dump(results, f, indent=2)
        return 0
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except RuntimeError as exc:
        print(f"bench failed: {exc}", file=sys.stderr)
        return 1
    finally:
        if args.keep:
            print(f"kept {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
