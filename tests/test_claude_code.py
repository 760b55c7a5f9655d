"""Claude Code (``@anthropic-ai/claude-code``, the version the README's test
command installs) in ``-p`` mode, through the router, against fake upstreams
of both kinds: a tool round trip, ``/context`` and its burst of
``count_tokens``, a session kept on one of a load-balanced pair across three
runs, and a context overflow it must recognise as one.

The fake upstream plays the model (``agent``): asked to use a tool, it calls
Claude Code's ``Bash`` tool until the tool's result comes back, then answers.
Claude Code runs with its own ``HOME`` in a temporary directory, no telemetry
and no traffic but the model's; skipped only when the ``claude`` binary is not
installed."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import uuid
from collections import Counter
from typing import Any

import pytest

from tests.configs import every_model_to, provider
from tests.fake_upstream import Reply, anthropic_message, openai_completion, scripted_sse

CLAUDE = shutil.which("claude")
pytestmark = pytest.mark.skipif(
    CLAUDE is None, reason="Claude Code is not installed (npm install -g @anthropic-ai/claude-code, as the README's test command does)"
)

MODEL, SMALL_MODEL = "claude-sonnet-5-5", "claude-haiku-5-5"
PROOF = "proof.txt"
BASH_CALL = ("toolu_proof01", "Bash", json.dumps({"command": f"echo tornrouter > {PROOF}", "description": "Write the proof"}))
DONE = "All done: the proof is written."
COUNT = "/v1/messages/count_tokens"
OVERFLOW = {
    "anthropic": {"type": "error", "error": {"type": "invalid_request_error",
                                             "message": "prompt is too long: 250000 tokens > 200000 maximum"}},
    "openai": {"error": {"message": "This model's maximum context length is 200000 tokens. However, your messages "
                                    "resulted in 250000 tokens. Please reduce the length of the messages.",
                         "type": "invalid_request_error", "param": "messages", "code": "context_length_exceeded"}},
}


def has_tool_result(request: dict[str, Any]) -> bool:
    """Whether a request of either API carries a tool's result."""
    for message in request.get("messages") or []:
        if message.get("role") == "tool":
            return True
        content = message.get("content")
        if isinstance(content, list) and any(isinstance(b, dict) and b.get("type") == "tool_result" for b in content):
            return True
    return False


def agent(kind: str, request: Any) -> Reply | None:
    """A ``FakeUpstream.chooser``: the model Claude Code talks to.  Counting is
    the fake's own (None); a prompt that says OVERFLOW is too long; one that
    says TOOL gets the Bash call until its result comes back; anything else,
    and that result, get ``DONE``."""
    if kind == "count_tokens" or not isinstance(request, dict):
        return None
    prompt = json.dumps(request.get("messages"))
    if "OVERFLOW" in prompt:
        return Reply(status=400, body=OVERFLOW[kind])
    calls = [BASH_CALL] if "TOOL" in prompt and not has_tool_result(request) else []
    text = None if calls else DONE
    if request.get("stream"):
        return Reply(sse=scripted_sse(kind, text, calls, model=request.get("model", MODEL)))
    assert not calls, "Claude Code streams its turns"
    return Reply(body=anthropic_message(request, DONE) if kind == "anthropic" else openai_completion(request, DONE))


class ClaudeCode:
    """``claude -p`` runs in one working directory with one ``HOME``, against ``router``."""

    def __init__(self, router, tmp_path) -> None:
        self.home = tmp_path / "home"
        self.work = tmp_path / "work"
        self.home.mkdir()
        self.work.mkdir()
        self.env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(self.home),
            "ANTHROPIC_BASE_URL": router.url,
            "ANTHROPIC_API_KEY": "sk-ant-client-key",  # the router's client key (any, on an open router)
            "ANTHROPIC_MODEL": MODEL,
            "ANTHROPIC_DEFAULT_HAIKU_MODEL": SMALL_MODEL,
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
            "DISABLE_TELEMETRY": "1",
            "DISABLE_ERROR_REPORTING": "1",
            "DISABLE_AUTOUPDATER": "1",
        }

    async def run(self, *args: str) -> tuple[int, str, str]:
        """``claude -p ARGS``: (exit status, stdout, stderr)."""
        process = await asyncio.create_subprocess_exec(
            CLAUDE, "-p", *args, cwd=self.work, env=self.env,
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )
        try:
            out, err = await asyncio.wait_for(process.communicate(), 150)  # a guard against a hang, no more
        except asyncio.TimeoutError:
            process.kill()
            await process.wait()
            raise
        return process.returncode, out.decode(), err.decode()

    async def result(self, *args: str) -> dict[str, Any]:
        """``claude -p ARGS --output-format json``: its result object."""
        code, out, err = await self.run(*args, "--output-format", "json")
        result = json.loads(out)
        assert (code == 0) == (not result["is_error"]), (code, out, err)
        return result


def one_upstream(tmp_path, kind: str, url: str) -> dict[str, Any]:
    return every_model_to(tmp_path, {"up": provider(kind, url)}, "up")


def messages(upstream) -> list:
    return [r for r in upstream.requests if r.path != COUNT]


@pytest.mark.gen_test(timeout=300)
@pytest.mark.parametrize("kind", ["anthropic", "openai"])
async def test_a_tool_round_trip(start_router, fakes, tmp_path, kind):
    upstream = fakes()
    upstream.chooser = agent
    router = start_router(one_upstream(tmp_path, kind, upstream.url))
    claude = ClaudeCode(router, tmp_path)

    result = await claude.result("TOOL: write the proof file with Bash", "--allowedTools", "Bash")

    assert result["result"] == DONE and result["num_turns"] == 2
    assert (claude.work / PROOF).read_text() == "tornrouter\n"  # Claude Code ran the tool the model asked for
    turns = messages(upstream)
    assert len(turns) == 2 and not has_tool_result(turns[0].body) and has_tool_result(turns[1].body)
    entries = router.log_entries()
    assert {e["session"] for e in entries} == {result["session_id"]}  # X-Claude-Code-Session-Id, on every request
    assert all(e["status"] == 200 and e["stream"] for e in entries if e["endpoint"] == "/v1/messages")
    if kind == "anthropic":
        assert all("claude-code-20250219" in r.headers["Anthropic-Beta"].split(",") for r in turns)
        assert turns[1].body["messages"][-1]["content"][0]["tool_use_id"] == "toolu_proof01"
        assert all("x-tornrouter-lossy" not in e or not e["lossy"] for e in entries)
    else:
        assert not any(name.lower().startswith("anthropic-") for r in turns for name in r.headers)
        assert any(m["role"] == "tool" and m["tool_call_id"] == "toolu_proof01" for m in turns[1].body["messages"])
        assert "Bash" in [t["function"]["name"] for t in turns[0].body["tools"]]
        assert all("anthropic-beta" in e["lossy"] for e in entries)


@pytest.mark.gen_test(timeout=300)
@pytest.mark.parametrize("kind", ["anthropic", "openai"])
async def test_context_counts_its_tokens(start_router, fakes, tmp_path, kind):
    upstream = fakes()
    upstream.chooser = agent
    router = start_router(one_upstream(tmp_path, kind, upstream.url))
    claude = ClaudeCode(router, tmp_path)

    code, out, err = await claude.run("/context")

    assert code == 0, (out, err)
    assert "Context Usage" in out
    counted = [e for e in router.log_entries() if e["endpoint"] == COUNT]
    assert len(counted) > 5 and all(e["status"] == 200 for e in counted)  # the burst /context sends
    assert all(e["usage"] is None and e["cost_usd"] is None for e in counted)  # not billed
    if kind == "anthropic":  # forwarded, with the beta flags Claude Code sent
        forwarded = [r for r in upstream.requests if r.path == COUNT]
        assert len(forwarded) == len(counted)
        assert all("token-counting-2024-11-01" in r.headers["Anthropic-Beta"] for r in forwarded)
        assert {e["token_count"]["counted"] for e in counted} == {"upstream"}
    else:  # an OpenAI upstream cannot count: the router estimates
        assert upstream.requests == []
        assert {e["token_count"]["counted"] for e in counted} == {"estimated"}


@pytest.mark.gen_test(timeout=300)
async def test_a_session_stays_on_one_of_a_load_balanced_pair(start_router, fakes, tmp_path):
    a, b = fakes(), fakes()
    a.chooser = b.chooser = agent
    router = start_router(every_model_to(tmp_path, {"a": provider("anthropic", a.url), "b": provider("anthropic", b.url)},
                                         ["a", "b"], strategy="loadbalance"))
    claude = ClaudeCode(router, tmp_path)
    session = str(uuid.uuid4())

    first = await claude.result("TOOL: write the proof file", "--allowedTools", "Bash", "--session-id", session)
    code, out, err = await claude.run("--resume", session, "/context")
    last = await claude.result("--resume", session, "Thanks. Anything else?")

    assert first["result"] == last["result"] == DONE and code == 0, (out, err)
    served = Counter(e["provider"] for e in router.log_entries())
    assert len(served) == 1, served  # 3 turns and every count_tokens of /context: one target
    (pinned,) = served
    assert sum(served.values()) > 10 and len((a if pinned == "a" else b).requests) == sum(served.values())
    turns = [e for e in router.log_entries() if e["endpoint"] == "/v1/messages"]
    assert [e["affinity"]["pin"] for e in turns] == ["new", "kept", "kept"]
    assert {e["session"] for e in router.log_entries()} == {session}


@pytest.mark.gen_test(timeout=300)
@pytest.mark.parametrize("kind", ["anthropic", "openai"])
async def test_a_context_overflow_is_recognised_as_one(start_router, fakes, tmp_path, kind):
    upstream = fakes()
    upstream.chooser = agent
    router = start_router(one_upstream(tmp_path, kind, upstream.url))
    claude = ClaudeCode(router, tmp_path)

    result = await claude.result("OVERFLOW: this conversation is too long")

    assert result["is_error"] and result["terminal_reason"] == "prompt_too_long"
    assert result["api_error_status"] == 400
    # In Claude Code's own words, with the counts the upstream gave (OpenAI's too).
    assert result["result"].startswith("Prompt is too long") and "250000" in result["result"]
    assert "200000" in result["result"]
