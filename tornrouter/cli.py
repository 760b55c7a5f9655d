"""The command line: load and check the config, then serve (one process, or
``--processes N`` workers on one port) until SIGTERM/SIGINT; SIGHUP reloads.
The lifecycle itself is in ``lifecycle`` (one process) and ``workers``.
``tornrouter init [DIR]`` writes the example configs out (``starter``);
``tornrouter conformance`` checks a provider (``conformance``)."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import os
import shutil
import signal
import sys
import tempfile
from pathlib import Path
from typing import Callable

from tornado.netutil import bind_sockets

from . import __version__
from .runtime import Runtime
from .components import Components
from .config import Config, load_config
from .conformance.arguments import add_arguments as add_conformance_arguments
from .errors import ConfigError
from .fleet import Placement
from .lifecycle import SIGNALS, Service
from .server import fit_open_files_limit
from .starter import AlreadyThere, write_examples
from .workers import REFUSED, run_workers

log = logging.getLogger("tornrouter")
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="tornrouter", description="An LLM gateway for OpenAI and Anthropic clients.")
    parser.add_argument("--version", action="version", version=f"tornrouter {__version__}")
    commands = parser.add_subparsers(dest="command", title="commands", metavar="COMMAND")
    init = commands.add_parser("init", help="write the example configs (dev.yaml, prod.yaml) into DIR")
    init.add_argument("dir", nargs="?", default=".", type=Path, help="where to write them (default: here)")
    init.add_argument("--force", action="store_true", help="overwrite configs of the same name")
    conformance = commands.add_parser("conformance", help="check that a provider speaks its API as the router reads it")
    add_conformance_arguments(conformance)
    explain = commands.add_parser("explain", help="what the router would do with a request, without sending it")
    explain.add_argument("--conf", required=True, help="the YAML config file")
    explain.add_argument("request", help="a request body (JSON) of chat completions, messages or responses")
    explain.add_argument("--api", choices=("chat", "messages", "responses"),
                         help="the body's API (default: inferred from its fields)")
    explain.add_argument("--key", help="the client key to send it with (the admin key explains any model)")
    explain.add_argument("--id", help="the request id: it seeds a loadbalance draw (default: a new one)")
    replay = commands.add_parser("replay", help="route a request log under another config, or send it again")
    replay.add_argument("logs", nargs="+", metavar="LOG", help="request log files or globs (requests.*.jsonl)")
    replay.add_argument("--conf", help="the config to route them under (required unless --send)")
    replay.add_argument("--csv", metavar="FILE", help="write one row per request")
    replay.add_argument("--json", metavar="FILE", help="write one object per request (with --send: the report)")
    replay.add_argument("--send", action="store_true", help="send the logged requests to --to-url instead")
    replay.add_argument("--to-url", help="the running router to send them to (http://host:port)")
    replay.add_argument("--rate", type=float, help="at most R requests started per second (default: no limit)")
    replay.add_argument("--concurrency", type=int, default=4, help="at most C requests at once (default 4)")
    replay.add_argument("--key", help="the client key to send them with")
    parser.add_argument("--conf", help="the YAML config file (required to serve)")
    parser.add_argument("--host", help="listen address (overrides server.host)")
    parser.add_argument("--port", type=int, help="listen port (overrides server.port)")
    parser.add_argument("--processes", type=int, default=1, metavar="N",
                        help="worker processes on the one port (default 1: no workers, one process serves)")
    parser.add_argument("--check", action="store_true", help="validate the config and exit")
    args = parser.parse_args(argv)
    if args.command is None and args.conf is None:
        parser.error("the following arguments are required: --conf (or run `tornrouter init` for example configs)")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.command == "init":
        return init(args.dir, args.force)
    if args.command == "conformance":  # imported here: its stream validators are no part of serving
        from .conformance.command import main as conformance

        return conformance(args)
    if args.command == "explain":
        return explain(args)
    if args.command == "replay":
        return replay(args)
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    # The JSONL request log is the access log; Tornado's own would cost every request a line.
    logging.getLogger("tornado.access").setLevel(logging.WARNING)
    if args.processes < 1:
        print("--processes: must be at least 1", file=sys.stderr)
        return 2
    try:
        config = read_config(args)
        if args.check:
            Components(config)  # built, not set up: a check opens no connection
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"{args.conf}: {problem}", file=sys.stderr)
        return REFUSED
    if args.check:
        print(f"{args.conf}: ok")
        return 0
    # Held until the event loop handles them (Service.install_signal_handlers):
    # a signal that comes as soon as the port accepts is not lost, nor fatal.
    signal.pthread_sigmask(signal.SIG_BLOCK, SIGNALS)
    fit_open_files_limit(config.server)
    sockets = bind_sockets(config.server.port, config.server.host)
    host, port = sockets[0].getsockname()[:2]
    log.info("tornrouter listening on http://%s:%d (%s)", host, port, config.source)
    if args.processes == 1:
        return asyncio.run(serve(config, lambda: read_config(args), sockets, Placement.of(config, port)))
    # The workers' sockets for the dashboard's fleet view (tornrouter/fleet/sockets.py): private to this parent.
    socket_dir = tempfile.mkdtemp(prefix="tornrouter-fleet-")
    try:
        return run_workers(args.processes, sockets, lambda worker: work(
            args, worker, sockets, Placement.of(config, port, worker=worker, workers=args.processes, socket_dir=socket_dir)))
    finally:
        shutil.rmtree(socket_dir, ignore_errors=True)


def init(directory: Path, force: bool) -> int:
    try:
        written = write_examples(directory, force)
    except AlreadyThere as exc:
        print(f"tornrouter init: not overwriting {exc} (add --force to replace)", file=sys.stderr)
        return 2
    for path in written:
        print(f"wrote {path}")
    print(f"serve the offline default with: tornrouter --conf {written[0]}")
    return 0


def explain(args: argparse.Namespace) -> int:
    from .explain_command import run

    logging.basicConfig(level=logging.WARNING, format=LOG_FORMAT)  # stdout is the explanation's
    config = config_or_problems(args.conf)
    if config is None:
        return REFUSED
    return run(config, args.request, args.api, args.key, args.id)


def replay(args: argparse.Namespace) -> int:
    from .replay.command import run

    logging.basicConfig(level=logging.WARNING, format=LOG_FORMAT)  # stdout is the report's
    if args.send and not args.to_url:
        print("tornrouter replay: --send needs --to-url", file=sys.stderr)
        return 2
    if not args.send and not args.conf:
        print("tornrouter replay: --conf is required (the config to route under), unless --send", file=sys.stderr)
        return 2
    if args.concurrency < 1 or (args.rate is not None and args.rate <= 0):
        print("tornrouter replay: --concurrency and --rate must be positive", file=sys.stderr)
        return 2
    config = None
    if not args.send:
        config = config_or_problems(args.conf)
        if config is None:
            return REFUSED
    return run(args, config)


def config_or_problems(path: str) -> Config | None:
    """The config at ``path``, or None once its problems are on stderr (a command that only reads it)."""
    try:
        return load_config(path)
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"{path}: {problem}", file=sys.stderr)
        return None


def read_config(args: argparse.Namespace, worker: int | None = None) -> Config:
    """The config file with the command line's overrides; for a worker, its own
    request log file (``requests.jsonl`` -> ``requests.<worker>.jsonl``)."""
    config = load_config(args.conf)
    overrides = {k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
    if overrides:
        config = dataclasses.replace(config, server=dataclasses.replace(config.server, **overrides))
    if worker is not None and config.request_log:
        root, ext = os.path.splitext(config.request_log)
        config = dataclasses.replace(config, request_log=f"{root}.{worker}{ext}")
    return config


def work(args: argparse.Namespace, worker: int, sockets: list, placement: Placement | None = None) -> int:
    """One worker process, after the fork: its own loop, runtime and log file."""
    for handler in logging.getLogger().handlers:
        handler.setFormatter(logging.Formatter(LOG_FORMAT.replace("%(name)s", f"%(name)s[{worker}:{os.getpid()}]")))
    config = read_config(args, worker)
    log.info("worker %d starting (request log: %s)", worker, config.request_log or "off")
    return asyncio.run(serve(config, lambda: read_config(args, worker), sockets, placement))


async def serve(config: Config, load_config: Callable[[], Config], sockets: list, placement: Placement | None = None) -> int:
    """Start a runtime from ``config`` (its plugins and classifiers built and
    set up) and serve ``sockets`` with it until stopped: 0, or ``REFUSED`` if
    a plugin or a classifier could not be built or set up."""
    try:
        runtime = await Runtime.start(config, placement=placement)
    except ConfigError as exc:
        for problem in exc.problems:
            log.error("start refused: %s: %s", config.source, problem)
        return REFUSED
    await Service(runtime, load_config, sockets).run()
    return 0
