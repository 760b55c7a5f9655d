"""The seed's pipeline semantics, end to end through a real router: plugin flow
and error policy, routing decisions, and what the request log records.  The
``Pipeline`` alone, every hook outcome at every stage, is in
``test_pipeline_stages.py``."""

from __future__ import annotations

import json

import pytest

from tests.configs import base_config
from tests.wire import ANTHROPIC, OPENAI, body_for, chat, message
from tornrouter.classifiers import BaseClassifier
from tornrouter.plugins import BasePlugin, Flow


def with_plugins(upstream, tmp_path, *plugins, **more):
    return base_config(upstream.url, str(tmp_path / "requests.jsonl"), plugins=list(plugins), **more)


@pytest.mark.gen_test
async def test_echo_default_answers_offline(router):
    response = await router.post(OPENAI, chat("anything", "hi there"))
    assert response.code == 200
    body = json.loads(response.body)
    assert body["choices"][0]["message"]["content"] == "echo: hi there"
    assert response.headers["x-tornrouter-provider"] == "echo"
    assert response.headers["x-tornrouter-model"] == "anything"


@pytest.mark.gen_test
async def test_start_plugin_exception_is_500_naming_the_plugin(start_router, upstream, tmp_path):
    router = start_router(with_plugins(upstream, tmp_path, {"use": "tests.plugins_for_tests.Boom", "settings": {"hook": "on_start"}}))
    for path, body in ((OPENAI, chat("gpt-4o")), (ANTHROPIC, message("claude-x"))):
        response = await router.post(path, body)
        assert response.code == 500
        text = json.loads(response.body)
        error = text["error"]
        assert error["type"] == "router_error"
        assert error["message"] == "plugin 'boom' failed: boom in on_start"
    assert upstream.requests == []
    entries = router.log_entries()
    assert [e["status"] for e in entries] == [500, 500]
    assert entries[0]["error"] == "plugin 'boom' failed: boom in on_start"


@pytest.mark.gen_test
async def test_pre_routing_exception_is_500(start_router, upstream, tmp_path):
    router = start_router(with_plugins(upstream, tmp_path, {"use": "tests.plugins_for_tests.Boom", "settings": {"hook": "pre_request"}}))
    response = await router.post(ANTHROPIC, message("claude-x"))
    assert response.code == 500
    assert json.loads(response.body) == {
        "type": "error",
        "error": {"type": "router_error", "message": "plugin 'boom' failed: boom in pre_request"},
    }


@pytest.mark.gen_test
@pytest.mark.parametrize("hook", ["post_response", "on_end"])
async def test_late_plugin_exception_is_a_warning_and_the_answer_goes_out(start_router, upstream, tmp_path, hook, log_guard):
    # The warning carries the plugin's traceback, for its author; the guard checks it comes.
    log_guard.expect("tornrouter.plugins", f"plugin 'boom' {hook} hook failed")
    router = start_router(with_plugins(upstream, tmp_path, {"use": "tests.plugins_for_tests.Boom", "settings": {"hook": hook}}))
    response = await router.post(OPENAI, chat("gpt-4o"))
    assert response.code == 200


def recorder(name: str, **flows: str) -> dict:
    return {"use": "tests.plugins_for_tests.Recorder", "settings": {"name": name, **flows}}


STARTED = ["a:on_start", "b:on_start", "a:pre_request", "b:pre_request"]


@pytest.mark.gen_test
@pytest.mark.parametrize(
    "flows,calls,active",
    [
        pytest.param(
            {"pre_request": "MODIFIED"}, STARTED + ["a:post_response", "b:post_response", "a:on_end", "b:on_end"], ["a", "b"],
            id="every-stage",
        ),
        # a's STOP skips b's post_response and the whole End stage
        pytest.param({"post_response": "STOP"}, STARTED + ["a:post_response"], ["a"], id="post-response-stop"),
    ],
)
async def test_stage_order_across_plugins(start_router, upstream, tmp_path, flows, calls, active):
    router = start_router(with_plugins(upstream, tmp_path, recorder("a", **flows), recorder("b", on_end="MODIFIED")))
    response = await router.post(OPENAI, chat("gpt-4o"))
    assert response.code == 200
    assert json.loads(response.body)["calls"] == calls
    (entry,) = router.log_entries()
    assert entry["plugins"] == active


@pytest.mark.gen_test
async def test_short_circuit_answer_in_the_clients_format(start_router, upstream, tmp_path):
    router = start_router(with_plugins(upstream, tmp_path, {"use": "tests.plugins_for_tests.ShortCircuit"}))
    response = await router.post(ANTHROPIC, message("claude-x"))
    body = json.loads(response.body)
    assert response.code == 200
    assert body["type"] == "message" and body["content"] == [{"type": "text", "text": "short-circuited"}]
    assert response.headers["x-tornrouter-provider"] == "plugin"
    response = await router.post(OPENAI, chat("gpt-4o"))
    assert json.loads(response.body)["choices"][0]["message"]["content"] == "short-circuited"
    assert upstream.requests == []
    entries = router.log_entries()
    assert [e["provider"] for e in entries] == ["plugin", "plugin"]
    assert entries[0]["plugins"] == ["shortcircuit"]


@pytest.mark.gen_test
async def test_stop_without_response_is_500(start_router, upstream, tmp_path):
    router = start_router(with_plugins(upstream, tmp_path, {"use": "tests.plugins_for_tests.StopEmpty"}))
    response = await router.post(OPENAI, chat("gpt-4o"))
    assert response.code == 500
    assert json.loads(response.body)["error"]["message"] == "pipeline stopped without producing a response"


@pytest.mark.gen_test
async def test_plugins_apply_by_requested_model_glob(start_router, upstream, tmp_path):
    router = start_router(
        with_plugins(upstream, tmp_path, {"use": "tests.plugins_for_tests.Rewrite", "models": ["claude-*"], "settings": {"text": "rewritten"}})
    )
    claude = json.loads((await router.post(ANTHROPIC, message("claude-x"))).body)
    gpt = json.loads((await router.post(OPENAI, chat("gpt-4o"))).body)
    assert claude["content"][0]["text"] == "rewritten"
    assert gpt["choices"][0]["message"]["content"] != "rewritten"


@pytest.mark.gen_test
async def test_readme_example_plugin_and_classifier(start_router, upstream, tmp_path):
    config = with_plugins(
        upstream, tmp_path,
        {"use": "examples.plugins.Canned", "settings": {"replies": {"ping": "pong"}}},
        {"use": "examples.plugins.Footer", "models": ["claude-*"], "settings": {"text": " (via tornrouter)"}},
        classifiers=[{"use": "examples.plugins.Shouting"}],
    )
    config["router"]["routes"].insert(0, {"model": "*", "tags": ["shouting"], "to": "echo/calm-model"})
    router = start_router(config)
    pong = json.loads((await router.post(OPENAI, chat("gpt-4o", "ping"))).body)
    assert pong["choices"][0]["message"]["content"] == "pong"
    footer = json.loads((await router.post(ANTHROPIC, message("claude-x", "hi"))).body)
    assert footer["content"][0]["text"].endswith(" (via tornrouter)")
    shout = await router.post(OPENAI, chat("gpt-4o", "HELLO"))
    assert shout.headers["x-tornrouter-model"] == "calm-model"
    entries = router.log_entries()
    assert entries[0]["plugins"] == ["canned"] and entries[0]["provider"] == "plugin"
    assert entries[1]["plugins"] == ["footer"]
    assert entries[2]["routing"] == {"tags": {"shouting": "shouting"}, "matched": "route", "index": 0, "pattern": "*"}


@pytest.mark.gen_test
async def test_routing_decisions_are_logged(start_router, upstream, tmp_path):
    config = with_plugins(upstream, tmp_path, classifiers=[{"use": "long_context", "threshold_tokens": 10}, {"use": "tools"}])
    config["router"]["routes"].insert(0, {"model": "*", "tags": ["long_context"], "to": "echo/long-model"})
    router = start_router(config)
    await router.post(OPENAI, chat("gpt-4o", "short"))
    await router.post(OPENAI, chat("gpt-4o", "a long prompt " * 20))
    await router.post(OPENAI, chat("ant,claude-opus-4-1"))
    await router.post(OPENAI, chat("unrouted-model"))
    forced = await router.post(OPENAI, chat("nosuch,model"))
    entries = router.log_entries()
    assert entries[0]["routing"] == {"tags": {}, "matched": "route", "index": 1, "pattern": "gpt-*"}
    assert entries[0]["provider"] == "oai" and entries[0]["sent_model"] == "gpt-4o"
    assert entries[1]["routing"] == {"tags": {"long_context": "long_context"}, "matched": "route", "index": 0, "pattern": "*"}
    assert entries[1]["sent_model"] == "long-model" and entries[1]["tags"] == ["long_context"]
    assert entries[2]["routing"]["matched"] == "forced" and entries[2]["provider"] == "ant"
    assert entries[2]["requested_model"] == "ant,claude-opus-4-1" and entries[2]["sent_model"] == "claude-opus-4-1"
    assert entries[3]["routing"]["matched"] == "default" and entries[3]["provider"] == "echo"
    assert forced.code == 400
    assert json.loads(forced.body)["error"]["message"] == "no provider configured for model 'nosuch,model'"


@pytest.mark.gen_test
async def test_no_route_and_no_default_is_400(start_router, upstream, tmp_path):
    config = with_plugins(upstream, tmp_path)
    config["router"]["default"] = None
    router = start_router(config)
    response = await router.post(ANTHROPIC, message("mystery"))
    assert response.code == 400
    assert json.loads(response.body)["error"]["message"] == "no provider configured for model 'mystery'"
    (entry,) = router.log_entries()
    assert entry["status"] == 400 and entry["error"] == "no provider configured for model 'mystery'"


@pytest.mark.gen_test
async def test_builtin_classifiers_tag(start_router, upstream, tmp_path):
    config = with_plugins(
        upstream, tmp_path,
        classifiers=[
            {"use": "images"}, {"use": "tools"}, {"use": "thinking"}, {"use": "web_search"},
            {"use": "background", "model": "*haiku*", "tag": "cheap"},
            {"use": "keyword", "tag": "code", "patterns": ["\\bdef\\b", "class "]},
        ],
    )
    router = start_router(config)
    body = {
        "model": "claude-3-5-haiku",
        "max_tokens": 100,
        "thinking": {"type": "enabled", "budget_tokens": 2048},
        "tools": [{"type": "web_search_20250305", "name": "web_search"}, {"name": "f", "input_schema": {"type": "object"}}],
        "messages": [
            {"role": "user", "content": [
                {"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}},
                {"type": "text", "text": "fix this def please"},
            ]},
        ],
    }
    await router.post(ANTHROPIC, body)
    (entry,) = router.log_entries()
    assert set(entry["tags"]) == {"images", "tools", "thinking", "web_search", "cheap", "code"}
    assert entry["routing"]["tags"]["cheap"] == "background"


@pytest.mark.gen_test
async def test_redact_plugin_changes_what_goes_upstream(start_router, upstream, tmp_path):
    router = start_router(with_plugins(upstream, tmp_path, {"use": "redact", "settings": {"patterns": ["\\d{16}"]}}))
    await router.post(OPENAI, chat("gpt-4o", "card 4111111111111111 please"))
    assert upstream.last.body["messages"][0]["content"] == "card [REDACTED] please"
    (entry,) = router.log_entries()
    assert entry["plugins"] == ["redact"]


def sloppy(change: str, hook: str = "pre_request") -> dict:
    return {"use": "tests.plugins_for_tests.Sloppy", "settings": {"change": change, "hook": hook}}


# (client endpoint, model): each client API to each kind of upstream.
TO_EACH_UPSTREAM = [(OPENAI, "gpt-4o"), (OPENAI, "claude-x"), (ANTHROPIC, "gpt-4o"), (ANTHROPIC, "claude-x")]


def upstream_system(body: dict) -> str:
    """The system prompt as the upstream received it, in its own wire form."""
    if "system" in body:
        system = body["system"]
        return system if isinstance(system, str) else "".join(block["text"] for block in system)
    assert body["messages"][0]["role"] == "system", body
    return body["messages"][0]["content"]


@pytest.mark.gen_test
@pytest.mark.parametrize("path,model", TO_EACH_UPSTREAM)
async def test_a_plugin_may_set_the_system_prompt_as_a_string(start_router, upstream, tmp_path, path, model):
    router = start_router(with_plugins(upstream, tmp_path, sloppy("system")))
    response = await router.post(path, body_for(path, model))
    assert response.code == 200, response.body
    assert upstream_system(upstream.last.body) == "be brief"
    (entry,) = router.log_entries()
    assert entry["system"] == "be brief" and entry["error"] is None


@pytest.mark.gen_test
@pytest.mark.parametrize("path,model", TO_EACH_UPSTREAM)
async def test_a_plugin_may_set_message_content_as_a_string(start_router, upstream, tmp_path, path, model):
    router = start_router(with_plugins(upstream, tmp_path, sloppy("content", hook="on_start")))
    response = await router.post(path, body_for(path, model))
    assert response.code == 200, response.body
    (sent,) = [m for m in upstream.last.body["messages"] if m["role"] == "user"]
    content = sent["content"]
    assert content == "say it plainly" or content == [{"type": "text", "text": "say it plainly"}]


@pytest.mark.gen_test
@pytest.mark.parametrize(
    "change,hook,problem",
    [
        ("append_int", "pre_request", "messages.1: expected a Message, got int"),
        ("max_tokens", "on_start", "max_tokens: expected an integer or None, got str"),
    ],
)
@pytest.mark.parametrize("stream", [False, True])
async def test_a_plugin_that_breaks_the_request_fails_it_naming_the_field(
    start_router, upstream, tmp_path, change, hook, problem, stream
):
    router = start_router(with_plugins(upstream, tmp_path, sloppy(change, hook)))
    expected = f"plugin 'brief' failed: {problem}"
    openai = await router.post(OPENAI, chat("gpt-4o", stream=stream))
    anthropic = await router.post(ANTHROPIC, message("claude-x", stream=stream))
    assert (openai.code, anthropic.code) == (500, 500)
    assert json.loads(openai.body) == {
        "error": {"message": expected, "type": "router_error", "param": None, "code": "plugin_failed"}
    }
    assert json.loads(anthropic.body) == {"type": "error", "error": {"type": "router_error", "message": expected}}
    assert upstream.requests == []
    entries = router.log_entries()
    assert [(e["status"], e["error"]) for e in entries] == [(500, expected)] * 2
    if change == "append_int":  # what the log cannot build is null, and entry_error says why
        assert entries[0]["messages"] is None
        assert entries[0]["entry_error"].startswith("messages: AttributeError(")


def test_a_plugin_class_with_a_sync_or_misspelt_hook_is_refused():
    with pytest.raises(TypeError, match=r"\.Sync\.pre_request must be a coroutine function: write 'async def pre_request\(self, ctx\)'$"):
        class Sync(BasePlugin):
            def pre_request(self, ctx):
                return Flow.CONTINUE

    with pytest.raises(TypeError, match=r"\.Typo\.pre_requests is not a plugin hook \(hooks: on_start, pre_request, post_response, on_end\)$"):
        class Typo(BasePlugin):
            async def pre_requests(self, ctx):
                return Flow.CONTINUE


def test_a_classifier_with_a_sync_classify_is_refused():
    with pytest.raises(TypeError, match=r"\.Sync\.classify must be a coroutine function: write 'async def classify\(self, request\)'$"):
        class Sync(BaseClassifier):
            def classify(self, request):
                return set()
