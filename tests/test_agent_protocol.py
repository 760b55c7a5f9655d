"""What coding agents rely on besides the answer itself: their upstream's
errors exactly as it sent them (or, from the other API, a context overflow in
their own API's words), the ``anthropic-*`` headers they send, and how long
the router itself took."""

from __future__ import annotations

import json

import anthropic
import openai
import pytest

from tests.fake_upstream import Reply
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
