"""``kind: azure`` end to end against a fake Azure OpenAI resource
(``tests/fake_azure.py``): every client API, whole and streamed; the
deployment and the v1 paths; the api-key and Entra ID tokens from a command or
an environment variable (never shown); content-filter results and errors."""

from __future__ import annotations

import json
import sys
from typing import Any

import pytest

from tests.answers import native_error
from tests.fake_azure import (
    AZURE_KEY, AZURE_TEXT, AZURE_TOKEN, PROMPT_FILTER, FakeAzure, azure_completion, azure_error, azure_sse,
)
from tests.fake_upstream import Reply
from tests.test_gemini import seen as seen_by_client, streaming, tools_for
from tests.upstream_faults import logged_entry, send
from tests.wire import ANTHROPIC, OPENAI, RESPONSES, body_for

PATHS = [OPENAI, ANTHROPIC, RESPONSES]


def seen(path: str, body: dict[str, Any], raw: bytes):
    """What the client read.  A chat-completions client gets Azure's stream as
    Azure sends it: its first chunk, without choices, holds the prompt's
    filter results (the OpenAI SDK reads past it); the rest is OpenAI's stream."""
    if path == OPENAI and body.get("stream"):
        first, _, rest = raw.partition(b"\n\n")
        assert json.loads(first[6:]) == {"choices": [], "created": 0, "id": "", "model": "", "object": "",
                                         "prompt_filter_results": PROMPT_FILTER}
        raw = rest
    return seen_by_client(path, body, raw)


@pytest.fixture
def azure(io_loop):
    fake = FakeAzure().start()
    yield fake
    io_loop.run_sync(fake.stop)


def config(tmp_path, fake: FakeAzure, **options: Any) -> dict[str, Any]:
    provider = {"kind": "azure", "base_url": fake.url, "deployments": {"gpt-4o": "prod-gpt4o"}, **options}
    if "token_command" not in options and "token_env" not in options:
        provider.setdefault("api_key", AZURE_KEY)
    return {
        "server": {"dashboard": False},
        "log": {"requests": str(tmp_path / "requests.jsonl")},
        "providers": {"az": provider},
        "router": {"default": "az/gpt-4o"},
    }


@pytest.mark.gen_test
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize("path", PATHS)
async def test_every_client_reaches_a_deployment(start_router, azure, tmp_path, path, stream):
    router = start_router(config(tmp_path, azure))
    body = body_for(path, "any-model", "hi there", tools=tools_for(path), **streaming(path, stream))

    response, raw = await send(router, path, body)

    assert response.code == 200, raw
    answer, _ = seen(path, body, raw)
    assert answer.text().startswith(AZURE_TEXT)
    assert azure.last.path == "/openai/deployments/prod-gpt4o/chat/completions"
    assert azure.last.headers["Api-Key"] == AZURE_KEY and "Authorization" not in azure.last.headers
    assert azure.last.body["tools"][0]["function"]["name"] == "get_weather"
    entry = await logged_entry(router, response)
    assert "SECRET" not in json.dumps(entry) and "SECRET" not in raw.decode()


@pytest.mark.gen_test
async def test_the_api_version_is_sent(start_router, azure, tmp_path):
    router = start_router(config(tmp_path, azure, api_version="2025-01-01-preview"))
    response = await router.post(OPENAI, body_for(OPENAI, "m"))
    assert response.code == 200, response.body
    assert azure.last.body["model"] == "gpt-4o"
    # The fake refuses a deployment path without it (404): the query reached it.
    assert response.headers["x-tornrouter-provider"] == "az"


@pytest.mark.gen_test
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
async def test_the_v1_path_names_the_deployment_in_the_body(start_router, azure, tmp_path, stream):
    router = start_router(config(tmp_path, azure, azure_path="v1"))
    body = body_for(ANTHROPIC, "m", "hi", **streaming(ANTHROPIC, stream))

    response, raw = await send(router, ANTHROPIC, body)

    assert response.code == 200, raw
    assert azure.last.path == "/openai/v1/chat/completions"
    assert azure.last.body["model"] == "prod-gpt4o"


@pytest.mark.gen_test
async def test_an_unknown_deployment_is_azures_404(start_router, azure, tmp_path):
    router = start_router(config(tmp_path, azure, deployments={}))
    response = await router.post(OPENAI, body_for(OPENAI, "m"))
    assert response.code == 404
    assert "The API deployment for this resource does not exist" in native_error(OPENAI, response)


# --- Entra ID tokens -------------------------------------------------------------------------


@pytest.mark.gen_test
async def test_a_token_command_is_run_once_and_its_token_sent(start_router, azure, tmp_path):
    runs = tmp_path / "runs"
    script = tmp_path / "token.py"
    script.write_text(
        "import json, sys, time\n"
        f"open({str(runs)!r}, 'a').write('x')\n"
        f"print(json.dumps({{'accessToken': {AZURE_TOKEN!r}, 'expires_on': str(int(time.time()) + 3600), 'tokenType': 'Bearer'}}))\n"
    )
    router = start_router(config(tmp_path, azure, token_command=f"{sys.executable} {script}"))

    first = await router.post(OPENAI, body_for(OPENAI, "m"))
    second, raw = await send(router, ANTHROPIC, body_for(ANTHROPIC, "m", stream=True))

    assert first.code == 200 and second.code == 200, (first.body, raw)
    assert azure.last.headers["Authorization"] == f"Bearer {AZURE_TOKEN}" and "Api-Key" not in azure.last.headers
    assert runs.read_text() == "x"  # cached: one run for both requests


@pytest.mark.gen_test
async def test_a_token_from_the_environment(start_router, azure, tmp_path, monkeypatch):
    monkeypatch.setenv("TEST_AZURE_AD_TOKEN", AZURE_TOKEN)
    router = start_router(config(tmp_path, azure, token_env="TEST_AZURE_AD_TOKEN"))
    response = await router.post(RESPONSES, body_for(RESPONSES, "m"))
    assert response.code == 200, response.body
    assert azure.last.headers["Authorization"] == f"Bearer {AZURE_TOKEN}"


@pytest.mark.gen_test
async def test_a_failing_token_command_fails_the_request_without_its_output(start_router, azure, tmp_path):
    router = start_router(config(tmp_path, azure, token_command="echo leaked-SECRET; exit 3"))

    response = await router.post(OPENAI, body_for(OPENAI, "m"))

    assert response.code == 502
    assert native_error(OPENAI, response) == "provider 'az': token_command failed with exit status 3"
    entry = await logged_entry(router, response)
    assert "SECRET" not in response.body.decode() and "SECRET" not in json.dumps(entry)
    assert azure.requests == []


@pytest.mark.gen_test
async def test_a_wrong_key_is_azures_401(start_router, azure, tmp_path):
    router = start_router(config(tmp_path, azure, api_key="wrong-SECRET"))
    response = await router.post(ANTHROPIC, body_for(ANTHROPIC, "m"))
    assert response.code == 401
    assert "Access denied due to invalid subscription key" in native_error(ANTHROPIC, response)
    assert "SECRET" not in response.body.decode()


# --- content filtering -------------------------------------------------------------------------


@pytest.mark.gen_test
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize("path", PATHS)
async def test_a_filtered_answer_is_the_clients_content_filter(start_router, azure, tmp_path, path, stream):
    router = start_router(config(tmp_path, azure))
    azure.then(Reply(sse=azure_sse("I will not", finish="content_filter")) if stream
               else Reply(body=azure_completion({"model": "gpt-4o"}, "I will not", finish="content_filter")))
    body = body_for(path, "m", "something bad", **streaming(path, stream))

    response, raw = await send(router, path, body)

    assert response.code == 200, raw
    answer, wire = seen(path, body, raw)
    assert answer.stop_reason == ("refusal" if path == ANTHROPIC else "content_filter")
    assert answer.text() == "I will not"
    if path == OPENAI and not stream:  # Azure's own results reach a client of the same API as they came
        assert wire["prompt_filter_results"][0]["content_filter_results"]["hate"]["severity"] == "safe"
        assert wire["choices"][0]["content_filter_results"]["violence"]["filtered"] is False
    if path == ANTHROPIC and not stream:
        assert "prompt_filter_results" in response.headers["x-tornrouter-lossy"]


@pytest.mark.gen_test
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize("path", PATHS)
async def test_a_filtered_prompt_is_azures_400_in_the_clients_shape(start_router, azure, tmp_path, path, stream):
    router = start_router(config(tmp_path, azure))
    message = ("The response was filtered due to the prompt triggering Azure OpenAI's content management policy. "
               "Please modify your prompt and retry.")
    azure.then(Reply(status=400, body=azure_error(400, "content_filter", message, param="prompt", innererror={
        "code": "ResponsibleAIPolicyViolation",
        "content_filter_result": {"violence": {"filtered": True, "severity": "high"}}})))

    response, raw = await send(router, path, body_for(path, "m", "something bad", **streaming(path, stream)))

    assert response.code == 400
    response._body = raw
    assert native_error(path, response) == f"provider 'az': upstream returned 400: {message}"


@pytest.mark.gen_test
async def test_a_config_with_two_token_sources_is_refused(start_router, azure, tmp_path):
    from tornrouter.config import parse_config
    from tornrouter.errors import ConfigError

    with pytest.raises(ConfigError) as caught:
        parse_config(config(tmp_path, azure, token_command="true", token_env="X"), environ={})
    assert "providers.az.token_env: give token_command or token_env, not both" in str(caught.value)
