"""The ``tornrouter replay`` command: read the logs, rebuild each request,
then route them all under ``--conf`` (offline) or send them to ``--to-url``."""

from __future__ import annotations

import asyncio
import dataclasses
import sys
from collections import Counter
from typing import Any

import orjson

from ..classifiers.builtin import Background, Images, LongContext, ThinkingRequested, Tools, WebSearch
from ..config import Config
from ..runtime import Runtime
from .offline import Outcome, replay_entry
from .reading import NoLogFiles, log_files, read_entries
from .rebuild import NotReplayable, Rebuilt, rebuild
from .report import summary, write_csv, write_json
from .send import send_all

SHAPE_ONLY = (Background, Images, LongContext, ThinkingRequested, Tools, WebSearch)  # what a rebuilt shape keeps


def load(patterns: list[str]) -> tuple[list[str], list[tuple[str, dict[str, Any], Rebuilt]], Counter[str]]:
    """The files, each entry that rebuilds with its request, and what was skipped and why."""
    files = log_files(patterns)
    skipped: Counter[str] = Counter()
    rebuilt = []
    for path, entry in read_entries(files, skipped):
        try:
            rebuilt.append((path, entry, rebuild(entry)))
        except NotReplayable as exc:
            skipped[str(exc)] += 1
    return files, rebuilt, skipped


def run(args: Any, config: Config | None) -> int:
    try:
        files, entries, skipped = load(args.logs)
    except (NoLogFiles, OSError) as exc:
        print(f"tornrouter replay: {exc}", file=sys.stderr)
        return 2
    if args.send:
        return asyncio.run(_send(args, entries))
    assert config is not None
    outcomes = asyncio.run(route_all(config, entries))
    sys.stdout.write(summary(outcomes, files, args.conf, skipped, text_readers(config)))
    if args.json:
        write_json(args.json, outcomes)
    if args.csv:
        write_csv(args.csv, outcomes)
    return 0


def text_readers(config: Config) -> list[str]:
    """The classifiers that may read a request's text: all but the built-ins
    that read only lengths and shapes."""
    return [entry.use for entry in config.classifiers if entry.cls not in SHAPE_ONLY]


async def route_all(config: Config, entries: list[tuple[str, dict[str, Any], Rebuilt]]) -> list[Outcome]:
    """Each entry routed under ``config``, in a runtime of its own that logs
    nothing and holds its state in memory: a replay reads no live limit, pin
    or cache entry, and leaves none."""
    offline = dataclasses.replace(config, request_log=None, state=dataclasses.replace(config.state, backend="memory"))
    runtime = await Runtime.start(offline)
    try:
        return [await replay_entry(runtime, path, entry, rebuilt) for path, entry, rebuilt in entries]
    finally:
        await runtime.aclose()


async def _send(args: Any, entries: list[tuple[str, dict[str, Any], Rebuilt]]) -> int:
    whole = [rebuilt for _, _, rebuilt in entries if rebuilt.sendable]
    report = await send_all(whole, args.to_url, rate=args.rate, concurrency=args.concurrency, key=args.key,
                            skipped=len(entries) - len(whole))
    sys.stdout.write(report.text(args.to_url))
    if args.json:
        with open(args.json, "wb") as f:
            f.write(orjson.dumps(report.to_json(), option=orjson.OPT_INDENT_2))
    return 0
