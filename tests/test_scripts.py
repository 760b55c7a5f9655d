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


CELLS = {
    ("upstream", "openai"), ("upstream", "anthropic"), ("upstream", "responses"),
    ("baseline", "openai"), ("baseline", "anthropic"), ("baseline", "responses"),
    ("router", "openai"), ("router", "anthropic"), ("router", "responses"),
    ("router", "openai->anthropic"), ("router", "anthropic->openai"),
    ("router", "responses->openai"), ("router", "responses->anthropic"),
    ("cache", "openai"), ("cache", "anthropic"), ("cache", "responses"),
}


def check_rows(stdout: str, results: dict) -> list[dict]:
    rows = results["rows"]
    assert {(r["target"], r["endpoint"]) for r in rows} == CELLS
    for row in rows:
        assert row["errors"] == 0, row
        assert row["requests"] > 0, row
        assert (row["vs_baseline"] is not None) == (row["target"] in ("router", "cache")), row
        assert f"{row['target']} " in stdout
    # The router ran with its request log on, and logged every request it served
    # (warmup requests too, which the rows do not count).
    assert "router request log:" in stdout
    assert results["request_log_entries"] >= sum(r["requests"] for r in rows if r["target"] in ("router", "cache"))
    # The cache rows were answered from the cache: all but each cell's first request.
    assert results["cache_hits"] >= sum(r["requests"] for r in rows if r["target"] == "cache") - 2
    assert "cache hits vs baseline relay: openai c=2 " in stdout
    return rows


def test_bench_prints_its_table(tmp_path):
    stdout, results = run_bench(tmp_path)

    assert "requests/s" in stdout and "p50 ms" in stdout and "p99 ms" in stdout and "vs baseline" in stdout
    check_rows(stdout, results)


def test_streaming_mode_reports_time_to_first_token(tmp_path):
    stdout, results = run_bench(tmp_path, "--stream")

    assert "streams/s" in stdout and "ttft p50 ms" in stdout and "cpu us/event" in stdout
    rows = check_rows(stdout, results)
    assert {row["stream_tokens"] for row in rows} == {16, 60, 500}
    for row in rows:
        assert row["ttft_p50_ms"] is not None, row
        assert (row["cpu_us_per_event"] is not None) == (row["target"] != "upstream"), row
    assert "router adds [openai 500 tokens c=2]: cpu " in stdout  # what the router costs over the relay


def test_router_workers_are_measured_together(tmp_path):
    """``--processes 2``: the router's workers serve, their CPU time and their
    request logs (one file a worker) are counted."""
    _, results = run_bench(tmp_path, "--processes", "2", "--targets", "router", "--endpoints", "openai")
    (row,) = results["rows"]
    assert row["errors"] == 0 and row["requests"] > 0 and row["cpu_us_per_request"] > 0, row
    assert results["request_log_entries"] >= row["requests"]


def test_paced_mode_waits_for_the_first_token(tmp_path):
    stdout, results = run_bench(tmp_path, "--stream", "--paced", "--stream-tokens", "4", "--concurrency", "2",
                                "--targets", "baseline,router", "--endpoints", "openai")
    rows = results["rows"]
    assert {(r["target"], r["stream_tokens"]) for r in rows} == {("baseline", 4), ("router", 4)}
    for row in rows:
        assert row["errors"] == 0 and row["requests"] > 0, row
        assert row["ttft_p50_ms"] >= 50, row  # the upstream's first token comes after 50 ms, to both
    assert "router adds [openai 4 tokens c=2]" in stdout


# --- scripts/soak.py ----------------------------------------------------------------


def test_soak_runs_faulty_traffic_and_reports(tmp_path):
    """A few hundred requests through the soak: it runs end to end, every
    request gets an outcome and a log entry, and the router is cleaned up."""
    out = tmp_path / "soak.json"
    proc = subprocess.run(
        [sys.executable, os.path.join(SCRIPTS, "soak.py"), "--requests", "300", "--concurrency", "16",
         "--sample-every", "1", "--json", str(out)],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    results = json.loads(out.read_text())
    assert results["requests"] == 300
    assert sum(results["outcomes"].values()) == 300
    assert results["outcomes"].get("200", 0) + results["outcomes"].get("200 stream", 0) > 0
    assert "200 ill-formed stream" not in results["outcomes"]
    assert "connection error" not in results["outcomes"]
    # A client that hangs up before the router has read its request leaves no entry.
    hung_up = results["outcomes"].get("client hung up", 0)
    assert 300 - hung_up <= results["request_log_entries"] <= 300
    assert results["router_tracebacks"] == 0
    assert results["upstream_requests"]["faulty"] > 0
    assert all(sample["rss_kib"] for sample in results["rss_kib"])
    assert "requests/s" in proc.stdout and "router RSS: start" in proc.stdout


def test_soak_keeps_slow_streams_open_and_reports_their_memory(tmp_path):
    """``--slow-streams``: paced streams stay open through the traffic, each one
    valid, and the report gives the router's RSS per open stream."""
    out = tmp_path / "soak.json"
    proc = subprocess.run(
        [sys.executable, os.path.join(SCRIPTS, "soak.py"), "--requests", "100", "--concurrency", "8",
         "--slow-streams", "6", "--slow-event-s", "0.02", "--faults", "ok=100,500=0,502=0,503=0,529=0,429=0,drop=0,"
         "reset=0,cut=0,stall=0,slow=0,malformed=0,html=0,error_event=0", "--hangup-share", "0",
         "--sample-every", "1", "--json", str(out)],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    results = json.loads(out.read_text())
    slow = results["outcomes"].pop("slow 200 stream")
    assert slow >= 6 and set(results["outcomes"]) <= {"200", "200 stream"}, results["outcomes"]
    assert results["requests"] == 100 + slow == results["request_log_entries"]
    assert results["slow_streams_rss_kib"] > results["rss_kib"][0]["rss_kib"]
    assert "KiB per open stream" in proc.stdout


# --- scripts/profile_router.py ---------------------------------------------------------


def test_profile_prints_where_the_time_goes():
    proc = subprocess.run(
        [sys.executable, os.path.join(SCRIPTS, "profile_router.py"), "--duration", "0.5", "--concurrency", "2",
         "--stream", "--stream-tokens", "8", "--top", "5"],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "router openai c=2:" in proc.stdout and " 0 errors" in proc.stdout
    assert "Ordered by: internal time" in proc.stdout and "Ordered by: cumulative time" in proc.stdout
