"""The response cache's parts on their own: the key (a table of requests that
must and must not share an entry), entries, the byte-bounded memory store, the
client's directives, and the cache's config.

A key is computed here as the router computes it: the client's body bytes
through the endpoint's codec, then ``request_form`` and ``cache_key`` for a
target.  Raw JSON text is used where the point is how the client wrote it.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from typing import Any

import pytest

from tornrouter.cache.directives import Directives, read_directives
from tornrouter.cache.entry import Entry, decode_entry, encode_entry
from tornrouter.cache.key import cache_key, provider_fingerprint, request_form
from tornrouter.cache.store import MemoryStore
from tornrouter.canonical import ChatResponse, Image, Opaque, Text, Thinking, ToolCall, Usage
from tornrouter.config import ProviderConfig, parse_config
from tornrouter.errors import ConfigError, InvalidRequest
from tornrouter.formats import codec_for

OPENAI_PROVIDER = ProviderConfig(name="oai", kind="openai", base_url="http://127.0.0.1:9/v1", api_key="sk-SECRET")
ANTHROPIC_PROVIDER = ProviderConfig(name="ant", kind="anthropic", base_url="http://127.0.0.1:9", api_key="sk-ant-SECRET")


def key_of(body: Any, *, api: str = "openai", provider: ProviderConfig = OPENAI_PROVIDER, model: str = "gpt-4o",
           scope: str = "team-a", namespace: str = "") -> str:
    """The key the router would give ``body`` (a dict, or the client's raw JSON
    text) sent by a client of ``api`` to ``provider``/``model``."""
    raw = body.encode() if isinstance(body, str) else json.dumps(body).encode()
    request = codec_for(api).parse_request(raw)
    return cache_key(request_form(request), kind=provider.kind, fingerprint=provider_fingerprint(provider),
                     model=model, scope=scope, namespace=namespace)


def chat(**fields: Any) -> dict[str, Any]:
    return {"model": "gpt-4o", "messages": [{"role": "user", "content": "What is 2+2?"}], "temperature": 0, **fields}


def message(**fields: Any) -> dict[str, Any]:
    return {"model": "claude-x", "max_tokens": 100, "messages": [{"role": "user", "content": "What is 2+2?"}],
            "temperature": 0, **fields}


def image(data: bytes) -> dict[str, Any]:
    url = "data:image/png;base64," + base64.b64encode(data).decode()
    return chat(messages=[{"role": "user", "content": [{"type": "text", "text": "what is this?"},
                                                        {"type": "image_url", "image_url": {"url": url}}]}])


def tool(minimum: Any = 0, description: str = "weather") -> list[dict[str, Any]]:
    return [{"type": "function", "function": {"name": "get_weather", "description": description, "parameters": {
        "type": "object", "properties": {"days": {"type": "integer", "minimum": minimum}}}}}]


# (name, a, b): keyword arguments of key_of for each side.
SAME = [
    ("key order", {"body": '{"model": "gpt-4o", "temperature": 0, "messages": [{"role": "user", "content": "What is 2+2?"}]}'},
     {"body": '{"messages": [{"content": "What is 2+2?", "role": "user"}], "temperature": 0, "model": "gpt-4o"}'}),
    ("whitespace", {"body": json.dumps(chat(), indent=4)}, {"body": json.dumps(chat(), separators=(",", ":"))}),
    ("float formatting", {"body": '{"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}], "temperature": 0.5, "top_p": 1e-1, "frequency_penalty": 0.25}'},
     {"body": '{"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}], "temperature": 0.50, "top_p": 0.100, "frequency_penalty": 2.5E-1}'}),
    ("temperature 0 and 0.0", {"body": chat(temperature=0)}, {"body": chat(temperature=0.0)}),
    ("unicode escapes", {"body": '{"model": "gpt-4o", "messages": [{"role": "user", "content": "caf\\u00e9"}], "temperature": 0}'},
     {"body": '{"model": "gpt-4o", "messages": [{"role": "user", "content": "café"}], "temperature": 0}'}),
    ("streamed or not", {"body": chat()}, {"body": chat(stream=True, stream_options={"include_usage": True})}),
    ("anthropic streamed or not", {"body": message(), "api": "anthropic"}, {"body": message(stream=True), "api": "anthropic"}),
    ("the model as the client named it (the model sent is the key's)", {"body": chat(model="gpt-4o")},
     {"body": chat(model="oai,gpt-4o")}),
    ("the provider's key and timeouts", {"body": chat()},
     {"body": chat(), "provider": ProviderConfig(name="oai", kind="openai", base_url="http://127.0.0.1:9/v1",
                                                  api_key="sk-OTHER", timeout_s=5, retries=3)}),
]

DIFFERENT = [
    ("the question", {"body": chat()}, {"body": chat(messages=[{"role": "user", "content": "What is 2+3?"}])}),
    ("a system prompt", {"body": chat()},
     {"body": chat(messages=[{"role": "system", "content": "be brief"}, {"role": "user", "content": "What is 2+2?"}])}),
    ("an earlier turn", {"body": chat()},
     {"body": chat(messages=[{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"},
                             {"role": "user", "content": "What is 2+2?"}])}),
    ("temperature", {"body": chat(temperature=0)}, {"body": chat(temperature=0.1)}),
    ("top_p", {"body": chat()}, {"body": chat(top_p=0.9)}),
    ("max tokens", {"body": chat(max_tokens=100)}, {"body": chat(max_tokens=101)}),
    ("max_tokens or max_completion_tokens", {"body": chat(max_tokens=100)}, {"body": chat(max_completion_tokens=100)}),
    ("stop", {"body": chat(stop=["a"])}, {"body": chat(stop=["b"])}),
    ("response format", {"body": chat()}, {"body": chat(response_format={"type": "json_object"})}),
    ("a seed (an extra that reaches the wire)", {"body": chat(seed=1)}, {"body": chat(seed=2)}),
    ("reasoning effort", {"body": chat(reasoning_effort="low")}, {"body": chat(reasoning_effort="high")}),
    ("tools", {"body": chat(tools=tool(description="weather"))}, {"body": chat(tools=tool(description="forecast"))}),
    ("an integer and a float in a tool's schema", {"body": chat(tools=tool(minimum=0))}, {"body": chat(tools=tool(minimum=0.0))}),
    ("tool choice", {"body": chat(tools=tool(), tool_choice="auto")}, {"body": chat(tools=tool(), tool_choice="required")}),
    ("parallel tool calls", {"body": chat(tools=tool())}, {"body": chat(tools=tool(), parallel_tool_calls=False)}),
    ("images of the same size", {"body": image(b"\x89PNG-one")}, {"body": image(b"\x89PNG-two")}),
    ("the end user", {"body": chat(user="u1")}, {"body": chat(user="u2")}),
    ("thinking budget", {"body": message(thinking={"type": "enabled", "budget_tokens": 1024}), "api": "anthropic"},
     {"body": message(thinking={"type": "enabled", "budget_tokens": 2048}), "api": "anthropic"}),
    ("top_k", {"body": message(top_k=5), "api": "anthropic"}, {"body": message(top_k=6), "api": "anthropic"}),
    ("metadata", {"body": message(metadata={"user_id": "a"}), "api": "anthropic"},
     {"body": message(metadata={"user_id": "b"}), "api": "anthropic"}),
    ("the client's API", {"body": chat(max_tokens=100)}, {"body": message(model="gpt-4o"), "api": "anthropic"}),
    ("the model sent", {"body": chat(), "model": "gpt-4o"}, {"body": chat(), "model": "gpt-4o-mini"}),
    ("the upstream's API", {"body": chat()}, {"body": chat(), "provider": ANTHROPIC_PROVIDER}),
    ("where the provider points", {"body": chat()},
     {"body": chat(), "provider": ProviderConfig(name="oai", kind="openai", base_url="http://127.0.0.1:10/v1")}),
    ("the provider's extra headers", {"body": chat()},
     {"body": chat(), "provider": ProviderConfig(name="oai", kind="openai", base_url="http://127.0.0.1:9/v1",
                                                  headers={"anthropic-beta": "x"})}),
    ("the tenant", {"body": chat(), "scope": "team-a"}, {"body": chat(), "scope": "team-b"}),
    ("the namespace", {"body": chat(), "namespace": ""}, {"body": chat(), "namespace": "eval-7"}),
]


@pytest.mark.parametrize("name,a,b", SAME, ids=[row[0] for row in SAME])
def test_requests_that_must_share_an_entry(name, a, b):
    assert key_of(**a) == key_of(**b)


@pytest.mark.parametrize("name,a,b", DIFFERENT, ids=[row[0] for row in DIFFERENT])
def test_requests_that_must_not_share_an_entry(name, a, b):
    assert key_of(**a) != key_of(**b)


def test_a_key_is_the_same_in_every_process():
    """blake2b over a stable serialisation, not Python's salted ``hash``: a
    process with another hash seed computes the same key."""
    script = (
        "import json, sys; sys.path.insert(0, '.');"
        "from tests.test_cache_key import key_of, chat, tool;"
        "print(key_of(chat(tools=tool(), seed=3, user='u')))"
    )
    here = key_of(chat(tools=tool(), seed=3, user="u"))
    for seed in ("1", "2"):
        out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                             env={**os.environ, "PYTHONHASHSEED": seed},
                             cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        assert out.stdout.strip() == here


def test_a_request_a_plugin_left_unserialisable_cannot_be_keyed():
    request = codec_for("openai").parse_request(json.dumps(chat()).encode())
    request.extra["odd"] = {1: object()}
    with pytest.raises(TypeError):
        request_form(request)


# --- entries ------------------------------------------------------------------------


def test_an_entry_keeps_every_field_of_the_answer():
    response = ChatResponse(
        id="msg_1", model="m", source="anthropic", stop_reason="stop_sequence", stop_sequence="END",
        content=[
            Text("hello", {"citations": [{"url": "u"}]}),
            Thinking("hmm", signature="sig", extra={"x": 1}),
            ToolCall("call_1", "f", {"a": [1, 2.5]}, raw_arguments=None, extra={"type": "function"}),
            ToolCall("call_2", "g", {}, raw_arguments="not json"),
            Opaque("anthropic", {"type": "server_tool_use", "id": "s1", "name": "web_search", "input": {"q": "x"}}),
            Image(media_type="image/png", data="aGk="),
            Text("no", refusal=True),
        ],
        usage=Usage(10, 5, cache_read_tokens=3, cache_creation_tokens=1, extra={"service_tier": "standard"}),
        extra={"container": None, "system_fingerprint": "fp"},
    )
    entry = Entry(response, 1700000000.5, "ant", "claude-x", ["logprobs"])
    data = encode_entry(entry)
    assert decode_entry(data) == entry
    copy = decode_entry(data)
    copy.response.content[0].text += "!"  # what a hit's PostResponse hook does to its answer
    assert decode_entry(data).response.content[0].text == "hello"
    with pytest.raises(ValueError):
        decode_entry(b'{"v": 0}')
    with pytest.raises(ValueError):
        decode_entry(b"not json")


# --- the memory store -------------------------------------------------------------------


@pytest.mark.gen_test
async def test_the_memory_store_stays_within_its_bytes_whatever_comes():
    now = [1000.0]
    store = MemoryStore(max_bytes=64 * 1024, clock=lambda: now[0])
    sizes = []
    for i in range(2000):
        assert store.put_now(f"key-{i}", os.urandom(100 + (i * 37) % 3000), ttl_s=60)
        sizes.append(store.size_bytes())
    assert max(sizes) <= 64 * 1024
    assert sizes[-1] > 60 * 1024  # full, not emptied
    assert await store.get("key-0") is None  # the oldest went first
    assert await store.get("key-1999") is not None
    # Reading an entry makes it the most recently used: it outlives newer ones.
    keep = "key-1990"
    await store.get(keep)
    more = 2000
    while "key-1999" in store:  # until every entry older than the last read has gone
        store.put_now(f"key-{more}", os.urandom(2000), ttl_s=60)
        more += 1
    assert keep in store and "key-1991" not in store
    # Replacing an entry does not count it twice.
    before = store.size_bytes()
    store.put_now(keep, (await store.get(keep)), ttl_s=60)
    assert store.size_bytes() == before
    # Expired entries are not served, and give their bytes back.
    now[0] += 61
    assert await store.get(keep) is None
    assert store.size_bytes() < before


# --- directives ---------------------------------------------------------------------------


@pytest.mark.parametrize("headers,expected", [
    ({}, Directives()),
    ({"Cache-Control": "no-cache"}, Directives(no_cache=True)),
    ({"Cache-Control": "No-Store"}, Directives(no_store=True)),
    ({"Cache-Control": "max-age=60, no-transform"}, Directives(max_age=60)),
    ({"Cache-Control": 'max-age="30", max-age=90'}, Directives(max_age=30)),
    ({"Cache-Control": "no-cache, max-age=0"}, Directives(no_cache=True, max_age=0)),
    ({"x-tornrouter-cache-namespace": " eval-run-7 "}, Directives(namespace="eval-run-7")),
])
def test_directives_are_read_from_the_headers(headers, expected):
    assert read_directives(headers) == expected


@pytest.mark.parametrize("headers,field", [
    ({"Cache-Control": "max-age=soon"}, "Cache-Control"),
    ({"Cache-Control": "max-age=-1"}, "Cache-Control"),
    ({"Cache-Control": "max-age="}, "Cache-Control"),
    ({"x-tornrouter-cache-namespace": "two words"}, "x-tornrouter-cache-namespace"),
    ({"x-tornrouter-cache-namespace": "x" * 129}, "x-tornrouter-cache-namespace"),
    ({"x-tornrouter-cache-namespace": "é"}, "x-tornrouter-cache-namespace"),
])
def test_a_directive_that_cannot_be_read_is_refused_naming_its_header(headers, field):
    with pytest.raises(InvalidRequest) as caught:
        read_directives(headers)
    assert caught.value.param == field and caught.value.message.startswith(f"{field}: ")


# --- config ------------------------------------------------------------------------------


def config_problems(**sections: Any) -> list[str]:
    raw = {"providers": {"e": {"kind": "echo"}}, "router": {"default": "e"}, **sections}
    with pytest.raises(ConfigError) as caught:
        parse_config(raw, environ={})
    return caught.value.problems


def test_a_bad_cache_config_is_refused_naming_each_field():
    assert config_problems(
        router={"default": "e", "routes": [{"model": "x", "to": "e", "cache": {"ttl_s": 0, "colour": "red"}}]},
        cache={"max_bytes": 100, "models": [{"ttl_s": 5}, {"model": "y", "shared": "sometimes"}]},
    ) == [
        "router.routes.0.cache.ttl_s: Must be greater than 0.",
        "router.routes.0.cache.colour: Unknown field.",
        "cache.max_bytes: Must be greater than or equal to 4096.",
        "cache.models.0.model: Missing data for required field.",
        "cache.models.1.shared: Not a valid boolean.",
    ]
