"""The command line: load and check the config, then serve until SIGTERM/SIGINT."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import signal
import sys

from tornado.httpserver import HTTPServer

from .app import Runtime, build_components, make_app
from .config import Config, load_config
from .errors import ConfigError

log = logging.getLogger("tornrouter")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="tornrouter", description="An LLM gateway for OpenAI and Anthropic clients.")
    parser.add_argument("--conf", required=True, help="the YAML config file")
    parser.add_argument("--host", help="listen address (overrides server.host)")
    parser.add_argument("--port", type=int, help="listen port (overrides server.port)")
    parser.add_argument("--check", action="store_true", help="validate the config and exit")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # The JSONL request log is the access log; Tornado's own would cost every request a line.
    logging.getLogger("tornado.access").setLevel(logging.WARNING)
    try:
        config = load_config(args.conf)
        build_components(config)
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"{args.conf}: {problem}", file=sys.stderr)
        return 2
    overrides = {k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
    if overrides:
        config = dataclasses.replace(config, server=dataclasses.replace(config.server, **overrides))
    if args.check:
        print(f"{args.conf}: ok")
        return 0
    asyncio.run(serve(config))
    return 0


async def serve(config: Config) -> None:
    runtime = Runtime(config)
    server = HTTPServer(make_app(runtime), max_body_size=config.server.max_body_bytes, xheaders=True)
    server.listen(config.server.port, config.server.host)
    log.info("tornrouter listening on http://%s:%d (%s)", config.server.host, config.server.port, config.source)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("shutting down")
    server.stop()
    await server.close_all_connections()
    runtime.close()
