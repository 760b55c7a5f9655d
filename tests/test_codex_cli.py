"""Codex CLI (``@openai/codex``) end to end: ``codex exec`` talks to the router
as a model provider with ``wire_api = "responses"``, the router sends its turns
to a fake upstream of each kind (OpenAI chat completions, Anthropic messages,
OpenAI Responses), and a tool round trip works: the model asks for a shell command
(Codex's ``exec_command`` tool), Codex runs it and sends its output back, and
the model's final answer is what ``codex exec`` prints.

Codex sends every turn with ``store: false`` and the whole conversation in
``input``, and asks for nothing else at start-up (no model list).  The test is
skipped only when the ``codex`` binary is not installed (the README's test
command installs it: ``npm install -g @openai/codex``)."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from pathlib import Path

import pytest

from tests.fake_upstream import has_tool_result, tool_agent

CODEX = shutil.which("codex")
pytestmark = pytest.mark.skipif(CODEX is None, reason="the Codex CLI is not installed (npm install -g @openai/codex)")

ROUTER_KEY = "tr-codex-SECRET-7f3a"
COMMAND = "echo codex-ran-$((6 * 7))"  # the shell's arithmetic: proof that a shell ran it
OUTPUT = "codex-ran-42"
FINAL = "The command printed codex-ran-42."


def codex_home(directory: Path, router_url: str, model: str) -> Path:
    """``CODEX_HOME`` with the config the README gives, pointed at the router."""
    directory.mkdir()
    (directory / "config.toml").write_text(f"""\
model = "{model}"
model_provider = "tornrouter"
check_for_update_on_startup = false

[analytics]
enabled = false

[model_providers.tornrouter]
name = "tornrouter"
base_url = "{router_url}/v1"
env_key = "TORNROUTER_API_KEY"
wire_api = "responses"
""")
    return directory


async def codex_exec(home: Path, workdir: Path, prompt: str) -> tuple[int, str, str]:
    """``codex exec`` as a script runs it: no questions, no sandbox (the test's
    directory is the only thing it touches), outside a git repository."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home.parent),
        "CODEX_HOME": str(home),
        "TORNROUTER_API_KEY": ROUTER_KEY,
        "NO_PROXY": "127.0.0.1,localhost",
    }
    process = await asyncio.create_subprocess_exec(
        CODEX, "exec", "--skip-git-repo-check", "--ephemeral", "--strict-config", "--color", "never",
        "--dangerously-bypass-approvals-and-sandbox", "-C", str(workdir), prompt,
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env,
    )
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), 90)
    except asyncio.TimeoutError:
        process.kill()
        await process.wait()
        raise
    return process.returncode, stdout.decode(), stderr.decode()


@pytest.mark.gen_test(timeout=120)
@pytest.mark.parametrize("kind", ["openai", "anthropic", "responses"])
async def test_codex_exec_runs_a_tool_through_the_router(start_router, upstream, tmp_path, kind):
    router = start_router({
        "server": {"dashboard": False},
        "log": {"requests": str(tmp_path / "requests.jsonl")},
        "keys": [{"name": "codex", "key": ROUTER_KEY}],
        "providers": {
            "oai": {"kind": "openai", "base_url": upstream.url + "/v1", "api_key": "sk-upstream-openai"},
            "ant": {"kind": "anthropic", "base_url": upstream.url, "api_key": "sk-upstream-anthropic"},
            "oresp": {"kind": "openai-responses", "base_url": upstream.url + "/v1", "api_key": "sk-upstream-responses"},
        },
        "router": {"routes": [
            {"model": "codex-via-openai", "to": "oai/gpt-fake"},
            {"model": "codex-via-anthropic", "to": "ant/claude-fake"},
            {"model": "codex-via-responses", "to": "oresp/gpt-fake-responses"},
        ]},
    })
    await router.ready
    upstream.chooser = tool_agent(("call_codex_1", "exec_command", json.dumps({"cmd": COMMAND})), FINAL)
    workdir = tmp_path / "work"
    workdir.mkdir()
    home = codex_home(tmp_path / "codex-home", router.url, f"codex-via-{kind}")

    code, stdout, stderr = await codex_exec(home, workdir, "Run the command that proves a shell ran, then say what it printed.")

    assert code == 0, stderr
    assert FINAL in stdout, (stdout, stderr)
    turns = [r for r in upstream.requests if isinstance(r.body, dict)]
    assert len(turns) == 2, [r.body for r in turns]
    first, second = (r.body for r in turns)
    assert first["model"] == {"openai": "gpt-fake", "anthropic": "claude-fake", "responses": "gpt-fake-responses"}[kind]
    tool_names = [t["function"]["name"] if kind == "openai" else t.get("name") for t in first["tools"]]
    assert "exec_command" in tool_names
    assert not has_tool_result(kind, first) and has_tool_result(kind, second)
    assert OUTPUT in json.dumps(second)  # the command's output went back to the model
    entries = router.log_entries()
    assert [(e["endpoint"], e["status"], e["key"]) for e in entries] == [("/v1/responses", 200, "codex")] * 2
