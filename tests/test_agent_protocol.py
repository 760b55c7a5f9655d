"""What coding agents rely on besides the answer itself: their upstream's
errors exactly as it sent them (or, from the other API, a context overflow in
their own API's words), the ``anthropic-*`` headers they send, and how long
the router itself took."""

from __future__ import annotations

import json

import anthropic
import openai
import pytest

from tests.fake_upstream import Reply, scripted_sse
from tests.upstream_faults import error_body, send
from tests.wire import ANTHROPIC, OPENAI, chat, message

ANTHROPIC_OVERFLOW = error_body("anthropic", "prompt is too long: 250000 tokens > 200000 maximum", "invalid_request_error")
OPENAI_OVERFLOW = {"error": {
    "message": "This model's maximum context length is 128000 tokens. However, your messages resulted in 250000 tokens. "
               "Please reduce the length of the messages.",
    "type": "invalid_request_error", "param": "messages", "code": "context_length_exceeded",
}}


# --- errors -------------------------------------------------------------------------------


@pytest.mark.gen_test
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
async def test_anthropic_errors_reach_an_anthropic_client_exactly(router, upstream, stream):
    """What Claude Code's recovery reads: the status, the type, the message, Retry-After."""
    cases = [
        (529, error_body("anthropic", "Overloaded", "overloaded_error"), {}),
        (429, error_body("anthropic", "Number of request tokens has exceeded your per-minute rate limit",
                         "rate_limit_error"), {"Retry-After": "17"}),
        (400, ANTHROPIC_OVERFLOW, {}),
    ]
    for status, body, headers in cases:
        upstream.then(Reply(status=status, body=body, headers=headers))
        response, raw = await send(router, ANTHROPIC, message("claude-sonnet-5-5", stream=stream))
        assert response.code == status
        assert json.loads(raw) == body
        assert response.headers.get("Retry-After") == headers.get("Retry-After")
        assert float(response.headers["x-tornrouter-overhead-ms"]) >= 0  # on errors too


@pytest.mark.gen_test
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
async def test_an_openai_context_overflow_reaches_an_anthropic_client_in_anthropic_words(router, upstream, stream):
    upstream.then(Reply(status=400, body=OPENAI_OVERFLOW))
    response, raw = await send(router, ANTHROPIC, message("to-openai", stream=stream))
    assert response.code == 400
    assert json.loads(raw) == error_body(
        "anthropic", "prompt is too long: 250000 tokens > 128000 maximum", "invalid_request_error",
    )
    (entry,) = router.log_entries()
    assert entry["error"] == f"provider 'oai': upstream returned 400: {OPENAI_OVERFLOW['error']['message']}"


@pytest.mark.gen_test
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
async def test_an_anthropic_context_overflow_reaches_an_openai_client_in_openai_words(router, upstream, stream):
    upstream.then(Reply(status=400, body=ANTHROPIC_OVERFLOW))
    response, raw = await send(router, OPENAI, chat("to-anthropic", stream=stream))
    assert response.code == 400
    assert json.loads(raw) == {"error": {
        "message": "This model's maximum context length is 200000 tokens. However, your messages resulted in "
                   "250000 tokens. Please reduce the length of the messages.",
        "type": "invalid_request_error", "param": "messages", "code": "context_length_exceeded",
    }}


OTHER_OVERFLOWS = [
    pytest.param(  # vLLM: OpenAI's sentence, its own type, an HTTP status for the code
        {"error": {"message": "This model's maximum context length is 4096 tokens. However, you requested 5000 tokens "
                   "(4000 in the messages, 1000 in the completion). Please reduce the length of the messages or "
                   "completion.", "type": "BadRequestError", "param": None, "code": 400}},
        "prompt is too long: 5000 tokens > 4096 maximum", id="vllm"),
    pytest.param(  # llama.cpp: the counts in fields of their own
        {"error": {"code": 400, "message": "the request exceeds the available context size, try increasing it",
                   "type": "exceed_context_size_error", "n_prompt_tokens": 9000, "n_ctx": 8192}},
        "prompt is too long: 9000 tokens > 8192 maximum", id="llama.cpp"),
    pytest.param(  # no counts at all: the upstream's words after Anthropic's
        {"error": {"message": "Input length exceeds the context window", "type": "invalid_request_error"}},
        "prompt is too long: Input length exceeds the context window", id="no-counts"),
]


@pytest.mark.gen_test
@pytest.mark.parametrize("body,expected", OTHER_OVERFLOWS)
async def test_other_servers_overflows_are_reworded_too(router, upstream, body, expected):
    upstream.then(Reply(status=400, body=body))
    response = await router.post(ANTHROPIC, message("to-openai"))
    assert response.code == 400
    assert json.loads(response.body)["error"] == {"type": "invalid_request_error", "message": expected}


@pytest.mark.gen_test
async def test_other_cross_format_errors_are_not_taken_for_an_overflow(router, upstream):
    body = {"error": {"message": "max_tokens is too large: 999999", "type": "invalid_request_error", "param": "max_tokens",
                      "code": None}}
    upstream.then(Reply(status=400, body=body))
    response = await router.post(ANTHROPIC, message("to-openai"))
    assert response.code == 400
    assert json.loads(response.body)["error"] == {
        "type": "invalid_request_error", "message": "provider 'oai': upstream returned 400: max_tokens is too large: 999999",
    }


@pytest.mark.gen_test
async def test_the_sdks_see_the_overflow_as_their_own_apis(router, upstream):
    upstream.then(Reply(status=400, body=OPENAI_OVERFLOW), Reply(status=400, body=ANTHROPIC_OVERFLOW))
    client = anthropic.AsyncAnthropic(base_url=router.url, api_key="unused", max_retries=0)
    with pytest.raises(anthropic.BadRequestError) as caught:
        await client.messages.create(model="to-openai", max_tokens=10, messages=[{"role": "user", "content": "hi"}])
    await client.close()
    assert caught.value.body["error"]["message"].startswith("prompt is too long: 250000 tokens > 128000")
    oclient = openai.AsyncOpenAI(base_url=router.url + "/v1", api_key="unused", max_retries=0)
    with pytest.raises(openai.BadRequestError) as ocaught:
        await oclient.chat.completions.create(model="to-anthropic", messages=[{"role": "user", "content": "hi"}])
    await oclient.close()
    assert ocaught.value.code == "context_length_exceeded"


# --- anthropic-* headers --------------------------------------------------------------------

CLAUDE_CODE_BETAS = "claude-code-20250219,interleaved-thinking-2025-05-14,context-management-2025-06-27"
CLIENT_HEADERS = {
    "anthropic-beta": CLAUDE_CODE_BETAS,
    "anthropic-version": "2023-06-01",
    "anthropic-dangerous-direct-browser-access": "true",
}


@pytest.mark.gen_test
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
async def test_anthropic_headers_reach_an_anthropic_upstream(router, upstream, stream):
    body = message("claude-sonnet-5-5", stream=stream)
    if stream:
        response, _ = await router.post_stream(ANTHROPIC, body, headers=CLIENT_HEADERS)
    else:
        response = await router.post(ANTHROPIC, body, headers=CLIENT_HEADERS)
    assert response.code == 200
    sent = upstream.last.headers
    assert sent["Anthropic-Beta"] == CLAUDE_CODE_BETAS
    assert sent["Anthropic-Version"] == "2023-06-01"
    assert sent["Anthropic-Dangerous-Direct-Browser-Access"] == "true"
    assert sent["X-Api-Key"] == "sk-ant-test-SECRET"  # the provider's key, never the client's
    assert "x-tornrouter-lossy" not in response.headers


@pytest.mark.gen_test
async def test_the_sdks_betas_reach_the_upstream(router, upstream):
    client = anthropic.AsyncAnthropic(base_url=router.url, api_key="client-key")
    answer = await client.beta.messages.create(
        model="claude-sonnet-5-5", max_tokens=10, messages=[{"role": "user", "content": "hi"}],
        betas=["context-1m-2025-08-07", "interleaved-thinking-2025-05-14"],
    )
    await client.close()
    assert answer.content[0].text
    assert upstream.last.headers["Anthropic-Beta"] == "context-1m-2025-08-07,interleaved-thinking-2025-05-14"
    assert upstream.last.headers["X-Api-Key"] == "sk-ant-test-SECRET"


@pytest.mark.gen_test
async def test_anthropic_headers_to_an_openai_upstream_are_lossy(router, upstream):
    response = await router.post(ANTHROPIC, message("to-openai"), headers=CLIENT_HEADERS)
    assert response.code == 200
    assert not any(name.lower().startswith("anthropic-") for name in upstream.last.headers)
    lossy = response.headers["x-tornrouter-lossy"].split(", ")
    assert "anthropic-beta" in lossy and "anthropic-dangerous-direct-browser-access" in lossy
    assert "anthropic-version" not in lossy  # the body is written in the target's own version: nothing lost
    (entry,) = router.log_entries()
    assert "anthropic-beta" in entry["lossy"]


@pytest.mark.gen_test
async def test_a_provider_adds_strips_or_overrides_beta_flags(start_router, fakes, tmp_path):
    added, stripped, overridden = fakes(), fakes(), fakes()
    router = start_router({
        "log": {"requests": str(tmp_path / "requests.jsonl")},
        "providers": {
            "added": {"kind": "anthropic", "base_url": added.url, "betas": {"add": ["context-1m-2025-08-07"]}},
            "stripped": {"kind": "anthropic", "base_url": stripped.url,
                         "betas": {"strip": ["interleaved-thinking-*", "context-management-2025-06-27"]}},
            "overridden": {"kind": "anthropic", "base_url": overridden.url, "betas": {"override": ["only-this-2026-01-01"]}},
        },
        "router": {"routes": [{"model": name, "to": name} for name in ("added", "stripped", "overridden")]},
    })
    for name in ("added", "stripped", "overridden"):
        assert (await router.post(ANTHROPIC, message(name), headers=CLIENT_HEADERS)).code == 200
    assert added.last.headers["Anthropic-Beta"] == CLAUDE_CODE_BETAS + ",context-1m-2025-08-07"
    assert stripped.last.headers["Anthropic-Beta"] == "claude-code-20250219"
    assert overridden.last.headers["Anthropic-Beta"] == "only-this-2026-01-01"
    # an OpenAI client sends no flags of its own: the provider's are sent all the same
    assert (await router.post(OPENAI, chat("added"))).code == 200
    assert added.last.headers["Anthropic-Beta"] == "context-1m-2025-08-07"
    # every flag stripped: no header at all
    assert (await router.post(ANTHROPIC, message("stripped"), headers={"anthropic-beta": "interleaved-thinking-x"})).code == 200
    assert "Anthropic-Beta" not in stripped.last.headers


def test_betas_are_for_anthropic_providers_only():
    from tornrouter.config import parse_config
    from tornrouter.errors import ConfigError

    with pytest.raises(ConfigError) as error:
        parse_config({"providers": {"o": {"kind": "openai", "base_url": "http://x", "betas": {"add": ["a b"]}}}}, environ={})
    assert error.value.problems == [
        "providers.o.betas.add.0: one beta flag: no spaces or commas",
    ]
    with pytest.raises(ConfigError) as error:
        parse_config({"providers": {"o": {"kind": "openai", "base_url": "http://x", "betas": {"add": ["a"]}}}}, environ={})
    assert error.value.problems == ["providers.o.betas: only for kind anthropic (beta flags are Anthropic's)"]


# --- the router's own time --------------------------------------------------------------


@pytest.mark.gen_test
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
async def test_the_overhead_header_leaves_the_upstreams_time_out(router, upstream, stream):
    upstream.then(Reply(delay=0.3, sse=scripted_sse("anthropic", "one two three") if stream else None))
    response, _ = await send(router, ANTHROPIC, message("claude-sonnet-5-5", stream=stream))
    assert response.code == 200
    overhead = float(response.headers["x-tornrouter-overhead-ms"])
    (entry,) = router.log_entries()
    assert entry["overhead_ms"] == overhead
    (attempt,) = entry["attempts"]
    assert attempt["duration_ms"] >= 300  # the upstream's wait: not the router's time
    until = entry["ttft_ms"] if stream else entry["duration_ms"]  # a stream's head goes out with its first byte
    assert 0 <= overhead <= until - attempt["duration_ms"] + 0.2  # these two rounded to 0.1 ms
