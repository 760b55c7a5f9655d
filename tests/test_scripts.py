"""Smoke tests for the benchmark in ``scripts/``: it runs end to end and prints its table.

Tiny durations, no timing assertions: these prove the processes start, answer
correctly in every wire format (the load generator counts a wrong answer as an
error) and are cleaned up; the numbers are for ``python scripts/bench.py``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

SCRIPTS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "scripts")


def run_bench(tmp_path, *args: str) -> tuple[str, dict]:
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, os.path.join(SCRIPTS, "bench.py"), "--duration", "0.2", "--warmup", "0.05",
         "--concurrency", "2", "--json", str(out), *args],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout, json.loads(out.read_text())


def test_bench_prints_its_table(tmp_path):
    stdout, results = run_bench(tmp_path)
    rows = results["rows"]

    assert "requests/s" in stdout and "p50 ms" in stdout and "p99 ms" in stdout and "vs baseline" in stdout
    cells = {(r["target"], r["endpoint"]) for r in rows}
    assert cells == {
        ("upstream", "openai"), ("upstream", "anthropic"),
        ("baseline", "openai"), ("baseline", "anthropic"),
        ("router", "openai"), ("router", "anthropic"),
        ("router", "openai->anthropic"), ("router", "anthropic->openai"),
    }
    for row in rows:
        assert row["errors"] == 0, row
        assert row["requests"] > 0, row
        assert (row["vs_baseline"] is not None) == (row["target"] == "router"), row
        assert f"{row['target']} " in stdout
    # The router ran with its request log on, and logged every request it served
    # (warmup requests too, which the rows do not count).
    assert "router request log:" in stdout
    assert results["request_log_entries"] >= sum(r["requests"] for r in rows if r["target"] == "router")


def test_streaming_mode_against_the_upstream_and_the_baseline(tmp_path):
    stdout, results = run_bench(tmp_path, "--stream", "--targets", "upstream,baseline", "--endpoints", "openai,anthropic")
    rows = results["rows"]

    assert "streams/s" in stdout and "ttft p50 ms" in stdout
    assert [(r["target"], r["endpoint"]) for r in rows] == [
        ("upstream", "openai"), ("baseline", "openai"), ("upstream", "anthropic"), ("baseline", "anthropic"),
    ]
    for row in rows:
        assert row["errors"] == 0, row
        assert row["requests"] > 0 and row["ttft_p50_ms"] is not None, row
