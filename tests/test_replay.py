"""``tornrouter replay``: a request log written by a real router, routed
again under a changed config (offline), or sent again to a running router."""

from __future__ import annotations

import asyncio
import csv
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.access_support import TEAM_A, bearer
from tests.configs import base_config
from tests.wire import ANTHROPIC, OPENAI, RESPONSES, body_for

LONG = "tell me everything about the weather " * 30  # ~1100 characters: ~270 tokens
TOOLS = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]


def old_config(upstream_url: str, log_path: str) -> dict[str, Any]:
    config = base_config(upstream_url, log_path, keys=[{"name": "team-a", "key": "${TEAM_A_KEY}", "models": ["*"]}])
    config["classifiers"] = [{"use": "tools"}]
    return config


def new_config(upstream_url: str) -> dict[str, Any]:
    """gpt-* moves to Anthropic; the Responses models leave team-a's reach; a
    long_context classifier tags the long requests; tools still go to oai."""
    config = base_config(upstream_url, "unused.jsonl", keys=[{"name": "team-a", "key": "${TEAM_A_KEY}", "models": ["gpt-*", "claude-*"]}])
    del config["log"]
    config["classifiers"] = [{"use": "tools"}, {"use": "long_context", "threshold_tokens": 100}]
    config["router"]["routes"] = [
        {"model": "gpt-*", "tags": ["tools"], "to": "oai"},
        {"model": "gpt-*", "to": "ant/claude-haiku-4-5"},
        *config["router"]["routes"],
    ]
    return config


@pytest.fixture
def logged(start_router, upstream, tmp_path, monkeypatch):
    """A router's log after real traffic: 3 plain gpt-4o, 1 long gpt-4o, 1 with
    tools (chat); 2 claude (messages); 2 to-responses (responses)."""
    monkeypatch.setenv("TEAM_A_KEY", TEAM_A)

    async def run() -> tuple[Path, list[dict[str, Any]]]:
        router = start_router(old_config(upstream.url, str(tmp_path / "requests.jsonl")))
        sends = [(OPENAI, body_for(OPENAI, "gpt-4o", f"question {n}")) for n in range(3)]
        sends += [(OPENAI, body_for(OPENAI, "gpt-4o", LONG)), (OPENAI, body_for(OPENAI, "gpt-4o", "weather?", tools=TOOLS))]
        sends += [(ANTHROPIC, body_for(ANTHROPIC, "claude-haiku-4-5", f"claude {n}", system="be terse")) for n in range(2)]
        sends += [(RESPONSES, body_for(RESPONSES, "to-responses", f"resp {n}")) for n in range(2)]
        for path, body in sends:
            assert (await router.post(path, body, bearer(TEAM_A))).code == 200
        conf = tmp_path / "new.yaml"
        conf.write_text(yaml.safe_dump(new_config(upstream.url)))
        return conf, router.log_entries()

    return run


async def tornrouter(*args: str) -> tuple[int, str, str]:
    """The command line, in a process of its own (the loop keeps serving meanwhile)."""
    process = await asyncio.create_subprocess_exec(sys.executable, "-m", "tornrouter", *args,
                                                   stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(), 120)
    return process.returncode, out.decode(), err.decode()


def write_log(path: Path, entries: list[dict[str, Any]]) -> None:
    path.write_text("".join(json.dumps(e) + "\n" for e in entries))


@pytest.mark.gen_test(timeout=120)
async def test_replay_shows_moves_refusals_cost_and_tags(logged, tmp_path):
    conf, entries = await logged()
    log = tmp_path / "requests.jsonl"

    code, out, err = await tornrouter("replay", str(log), "--conf", str(conf),
                                      "--json", str(tmp_path / "out.json"), "--csv", str(tmp_path / "out.csv"))

    assert code == 0, err
    assert "replayed 9 request(s) from 1 file(s)" in out
    assert "target changes (old -> new): 4\n       4  oai/gpt-4o -> ant/claude-haiku-4-5\nunchanged: 3\n" in out
    assert "would now fail: 2\n       2  model refused: key 'team-a' may not use model 'to-responses'\n" in out
    assert "tag changes: 1\n       1  +long_context\n" in out
    rows = {row["id"]: row for row in json.loads((tmp_path / "out.json").read_text())}
    assert set(rows) == {e["id"] for e in entries}
    for entry in entries:
        row = rows[entry["id"]]
        assert row["before"] == f"{entry['provider']}/{entry['sent_model']}" and row["cost_before_usd"] == entry["cost_usd"]
        assert row["cost_before_source"] == "logged"
    moved = [row for row in rows.values() if row["changed"]]
    assert all(row["after"] == "ant/claude-haiku-4-5" and row["cost_after_source"] == "new prices, logged usage" for row in moved)
    # Haiku costs less than gpt-4o's output: the moved requests cost less after.
    assert sum(r["cost_after_usd"] for r in moved) != sum(r["cost_before_usd"] for r in moved)
    assert "cost (USD):\n  before " in out and "(9 logged)" in out and "(7 new prices, logged usage, 2 would fail)" in out
    with open(tmp_path / "out.csv", newline="") as f:
        table = list(csv.DictReader(f))
    assert len(table) == 9 and {r["failure_kind"] for r in table} == {"", "model refused"}


@pytest.mark.gen_test(timeout=120)
async def test_replay_reads_every_workers_file_and_skips_mirror_records_and_dry_runs(logged, tmp_path):
    conf, entries = await logged()
    mirror = {"type": "mirror", "ts_ms": 1, "id": entries[0]["id"], "route": 0, "pattern": "gpt-*", "target": "ant/x",
              "status": 200, "error": None, "latency_ms": 5.0, "usage": None, "cost_usd": 0.0, "compare": {}}
    dry = {**entries[0], "id": "dry", "dry_run": True, "provider": None}
    write_log(tmp_path / "requests.0.jsonl", entries[:4] + [mirror])
    write_log(tmp_path / "requests.1.jsonl", [dry] + entries[4:] + [mirror])

    code, out, err = await tornrouter("replay", str(tmp_path / "requests.*.jsonl"), "--conf", str(conf))

    assert code == 0, err
    assert "replayed 9 request(s) from 2 file(s)" in out
    assert "skipped: dry runs (1), mirror records (2)" in out
    assert "4  oai/gpt-4o -> ant/claude-haiku-4-5" in out


def shape_of(entry: dict[str, Any], bodies: str) -> dict[str, Any]:
    """``entry`` as ``log.bodies: none`` or ``hash`` writes it (contract: shapes, counts, no text)."""

    def text_of(block: dict[str, Any]) -> str:
        if block["type"] == "text":
            return block["text"]
        return json.dumps(block.get("input") or block.get("content") or "")

    def block(b: dict[str, Any]) -> dict[str, Any]:
        text = text_of(b)
        out = {"type": b["type"], "chars": len(text)}
        if bodies == "hash":
            out["sha256"] = hashlib.sha256(text.encode()).hexdigest()
        if "name" in b:
            out["name"] = b["name"]
        return out

    shaped = dict(entry, bodies=bodies)
    system = entry["system"]
    shaped["system"] = None if system is None else {"chars": len(system), **(
        {"sha256": hashlib.sha256(system.encode()).hexdigest()} if bodies == "hash" else {})}
    shaped["messages"] = [{"role": m["role"], "content": [block(b) for b in m["content"]]} for m in entry["messages"]]
    response = entry["response"]
    shaped["response"] = {"content": [block(b) for b in response["content"]], "stop_reason": response.get("stop_reason"),
                          "model": response.get("model")}
    return shaped


@pytest.mark.parametrize("bodies", ["none", "hash"])
@pytest.mark.gen_test(timeout=120)
async def test_a_log_without_bodies_is_routed_from_its_shape_as_with_them(logged, tmp_path, bodies):
    conf, entries = await logged()
    write_log(tmp_path / "shaped.jsonl", [shape_of(e, bodies) for e in entries])

    full_code, _, err = await tornrouter("replay", str(tmp_path / "requests.jsonl"), "--conf", str(conf), "--json", str(tmp_path / "full.json"))
    code, out, err = await tornrouter("replay", str(tmp_path / "shaped.jsonl"), "--conf", str(conf), "--json", str(tmp_path / "shaped.json"))

    assert full_code == code == 0, err
    assert "routed from their shape only (log.bodies none or hash): 9" in out
    full = {r["id"]: r for r in json.loads((tmp_path / "full.json").read_text())}
    shaped = {r["id"]: r for r in json.loads((tmp_path / "shaped.json").read_text())}
    for request_id, row in shaped.items():  # the long one is still long, the one with tools still has them
        assert row["from_shape"] is True
        assert (row["after"], row["failure"], row["tags_after"]) == (full[request_id]["after"], full[request_id]["failure"],
                                                                     full[request_id]["tags_after"])
    assert "1  +long_context" in out


@pytest.mark.gen_test(timeout=120)
async def test_replay_send_sends_the_whole_bodies_again_and_reports_latency(logged, start_router, upstream, tmp_path):
    conf, entries = await logged()
    write_log(tmp_path / "mixed.jsonl", entries[:5] + [shape_of(e, "none") for e in entries[5:]])
    target = start_router(old_config(upstream.url, str(tmp_path / "target.jsonl")))
    await target.ready
    before = len(upstream.requests)

    code, out, err = await tornrouter("replay", str(tmp_path / "mixed.jsonl"), "--send", "--to-url", target.url,
                                      "--rate", "50", "--concurrency", "2", "--key", TEAM_A, "--json", str(tmp_path / "sent.json"))

    assert code == 0, err
    assert f"sent 5 request(s) to {target.url}; skipped 4 without whole bodies in the log" in out
    assert "status: 200 x5" in out and "latency: p50 " in out and " p99 " in out
    assert "5/5" in err  # the progress bar
    report = json.loads((tmp_path / "sent.json").read_text())
    assert report["statuses"] == {"200": 5} and report["latency_ms"]["p95"] > 0
    resent = target.log_entries()
    assert [e["requested_model"] for e in resent].count("gpt-4o") == 5 and len(upstream.requests) == before + 5
    assert sorted(e["messages"][0]["content"][0]["text"] for e in resent) == sorted(
        e["messages"][0]["content"][0]["text"] for e in entries[:5])


@pytest.mark.gen_test(timeout=120)
async def test_a_hosted_tool_and_reasoning_are_rebuilt_from_the_entrys_request_field(start_router, upstream, tmp_path):
    config = base_config(upstream.url, str(tmp_path / "requests.jsonl"))
    config["classifiers"] = [{"use": "web_search"}, {"use": "thinking"}]
    router = start_router(config)
    body = body_for(ANTHROPIC, "claude-sonnet-4-5", "news?", max_tokens=2000,
                    tools=[{"type": "web_search_20250305", "name": "web_search", "max_uses": 2}],
                    thinking={"type": "enabled", "budget_tokens": 1024})
    assert (await router.post(ANTHROPIC, body)).code == 200
    [entry] = router.log_entries()
    assert entry["request"] == {"api": "anthropic", "max_tokens": 2000, "tools": ["web_search"],
                                "hosted_tools": {"web_search": "web_search_20250305"},
                                "reasoning": {"mode": "enabled", "budget_tokens": 1024}}
    del config["log"]
    conf = tmp_path / "same.yaml"
    conf.write_text(yaml.safe_dump(config))
    write_log(tmp_path / "shaped.jsonl", [shape_of(entry, "none")])

    code, out, err = await tornrouter("replay", str(tmp_path / "shaped.jsonl"), "--conf", str(conf), "--json", str(tmp_path / "out.json"))

    assert code == 0, err
    [row] = json.loads((tmp_path / "out.json").read_text())
    assert row["tags_before"] == row["tags_after"] == ["thinking", "web_search"]
    assert (row["before"], row["after"], row["changed"]) == ("ant/claude-sonnet-4-5", "ant/claude-sonnet-4-5", False)


@pytest.mark.gen_test(timeout=60)
async def test_replay_names_a_log_it_cannot_find_and_the_option_it_lacks(tmp_path):
    missing = str(tmp_path / "requests.*.jsonl")
    conf = tmp_path / "new.yaml"
    conf.write_text(yaml.safe_dump({"providers": {"echo": {"kind": "echo"}}, "router": {"default": "echo"}}))

    code, out, err = await tornrouter("replay", missing, "--conf", str(conf))
    no_conf = await tornrouter("replay", missing)
    no_url = await tornrouter("replay", missing, "--send")

    assert (code, out) == (2, "") and f"tornrouter replay: {missing}: no such log file" in err
    assert no_conf[0] == 2 and "--conf is required" in no_conf[2]
    assert no_url[0] == 2 and "--send needs --to-url" in no_url[2]


@pytest.mark.gen_test(timeout=120)
async def test_replay_warns_that_a_keyword_classifier_cannot_read_a_shape(logged, upstream, tmp_path):
    _, entries = await logged()
    write_log(tmp_path / "shaped.jsonl", [shape_of(e, "hash") for e in entries])
    config = new_config(upstream.url)
    config["classifiers"].append({"use": "keyword", "tag": "urgent", "patterns": ["urgent"]})
    conf = tmp_path / "keyword.yaml"
    conf.write_text(yaml.safe_dump(config))

    code, out, err = await tornrouter("replay", str(tmp_path / "shaped.jsonl"), "--conf", str(conf))

    assert code == 0, err
    assert "  (their text is placeholder: the tags of keyword may differ for them)\n" in out
