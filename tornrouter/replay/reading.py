"""Reading request logs for replay: several files (one per worker:
``requests.0.jsonl``, ``requests.1.jsonl``...), named as paths or globs, read
line by line.  What is not a request entry is counted and skipped: mirror
records (``type: mirror``), dry runs (they were explanations, not traffic),
lines that are not JSON objects."""

from __future__ import annotations

import glob
import os
from collections import Counter
from collections.abc import Iterator
from typing import Any

import orjson


class NoLogFiles(Exception):
    pass


def log_files(patterns: list[str]) -> list[str]:
    """The files ``patterns`` name, each once, in the order given (a glob's in
    sorted order).  ``NoLogFiles`` names a pattern that matches nothing."""
    files: list[str] = []
    for pattern in patterns:
        found = sorted(glob.glob(pattern)) if glob.has_magic(pattern) else ([pattern] if os.path.isfile(pattern) else [])
        if not found:
            raise NoLogFiles(f"{pattern}: no such log file")
        files += [f for f in found if f not in files]
    return files


def read_entries(files: list[str], skipped: Counter[str]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(file, entry) for each request entry; ``skipped`` counts the rest by why."""
    for path in files:
        with open(path, "rb") as f:
            for line in f:
                if not line.strip():
                    continue
                try:
                    entry = orjson.loads(line)
                except orjson.JSONDecodeError:
                    skipped["unreadable lines"] += 1
                    continue
                if not isinstance(entry, dict):
                    skipped["unreadable lines"] += 1
                elif entry.get("type") == "mirror":
                    skipped["mirror records"] += 1
                elif entry.get("dry_run"):
                    skipped["dry runs"] += 1
                else:
                    yield path, entry
