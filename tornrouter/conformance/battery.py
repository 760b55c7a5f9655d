"""The rows of the battery: what each sends and what it checks.

Each row is an async function ``(probe, trace) -> str`` that returns what it
saw when the check passes and raises ``Failed`` (the provider does not do what
the router needs) or ``Skipped`` (the row does not apply: the provider's API
cannot carry what it tests).  ``trace`` keeps what the row sent and got, for
the JSON report, whatever the ending.

The checks that read the model's words (a codeword, a name from an earlier
turn, a colour) look for one distinctive word, case-insensitively, so that any
competent model passes them however it phrases its answer.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from jsonschema import Draft202012Validator

from ..canonical import ChatRequest, ChatResponse, Image, ToolCall, ToolResult, Text, Usage
from ..errors import UpstreamError
from ..formats.base import short
from .image import solid_png
from .probe import PARALLEL, WEATHER, Probe, Streamed, assistant, user

UNKNOWN_MODEL = "tornrouter-conformance-no-such-model"
NO_RESPONSE = 599  # UpstreamError.upstream_status when no HTTP answer came (curl's, as Tornado's)
PONG = "Reply with exactly one word: pong"
CODEWORD = "HELIOTROPE"
SYSTEM = f"You are a test fixture. The codeword is {CODEWORD}. When asked for the codeword, reply with it and nothing else."
SURNAME = "Quist"
COUNT = "Count from 1 to 10 in digits, separated by commas and spaces, and write nothing else."
STOP = "7"
STORY = "Write a long story, at least 500 words, about a lighthouse keeper."
TINY_MAX_TOKENS = 16
WEATHER_PARIS = "What is the weather in Paris right now? Use the get_weather tool."
WEATHER_TWO = ("What is the weather in Paris and in Tokyo right now? Call get_weather once for each city, "
               "both calls in this one answer.")
TOOL_OUTPUT = '{"city": "Paris", "temperature_c": 17, "conditions": "violet fog"}'
COLOUR = "red"
USAGE_PROMPT = "Say hello in five words."
USAGE_MAX_TOKENS = 64


class Failed(Exception):
    """The provider does not do what the row checks; the message says what it did."""


class Skipped(Exception):
    """The row does not apply to this provider or model; the message says why."""


@dataclass
class Trace:
    """What a row sent and received, for the report, filled as the row goes."""

    lossy: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)

    async def send(self, probe: Probe, request: ChatRequest, label: str = "answer") -> ChatResponse:
        response, lossy = await probe.send(request)
        self._lost(lossy)
        self.details[label] = summary(response)
        return response

    async def stream(self, probe: Probe, request: ChatRequest, label: str = "stream") -> Streamed:
        streamed = await probe.stream(request)
        self._lost(streamed.lossy)
        self.details[label] = {
            **(summary(streamed.response) if streamed.response is not None else {}),
            "error": streamed.error.message if streamed.error else None,
            "problems": streamed.problems,
        }
        return streamed

    def _lost(self, lossy: list[str]) -> None:
        self.lossy += [name for name in lossy if name not in self.lossy]

    def unless_lost(self, names: tuple[str, ...], why: str) -> None:
        """``Skipped`` if the translation dropped one of ``names``: the provider never saw what the row tests."""
        lost = [name for name in self.lossy if name in names]
        if lost:
            raise Skipped(f"{why} (the translation drops {', '.join(lost)})")


def summary(response: ChatResponse) -> dict[str, Any]:
    return {
        "text": response.text(),
        "stop_reason": response.stop_reason,
        "stop_sequence": response.stop_sequence,
        "tool_calls": [
            {"name": b.name, "input": b.input, "raw_arguments": b.raw_arguments} for b in response.content if isinstance(b, ToolCall)
        ],
        "usage": response.usage.to_json(),
    }


# --- what the checks share ---------------------------------------------------------------


def excerpt(text: str) -> str:
    return repr(short(text, 60))


def says(response: ChatResponse, word: str) -> str:
    """The answer's text, if it contains ``word`` (case-insensitively)."""
    text = response.text().strip()
    if not text:
        raise Failed(f"no text in the answer (stop reason {response.stop_reason})")
    if word.lower() not in text.lower():
        raise Failed(f"the answer lacks {word!r}: {excerpt(text)}")
    return text


def stopped(response: ChatResponse, *reasons: str) -> None:
    if response.stop_reason not in reasons:
        raise Failed(f"stop reason {response.stop_reason!r}, expected {' or '.join(map(repr, reasons))}")


def weather_calls(response: ChatResponse) -> list[ToolCall]:
    """The answer's calls of the weather tool, each with arguments that parse and
    match its schema; ``Failed`` naming the first that does not."""
    calls = [block for block in response.content if isinstance(block, ToolCall)]
    if not calls:
        raise Failed(f"no tool call (stop reason {response.stop_reason!r}, text {excerpt(response.text())})")
    validator = Draft202012Validator(WEATHER.parameters)
    for call in calls:
        if call.name != WEATHER.name:
            raise Failed(f"a call of {call.name!r}, which was not offered")
        if call.raw_arguments is not None:
            raise Failed(f"arguments that are not a JSON object: {excerpt(call.raw_arguments)}")
        error = next(iter(validator.iter_errors(call.input)), None)
        if error is not None:
            raise Failed(f"arguments {json.dumps(call.input)} do not match the schema: {error.message}")
    if len({call.id for call in calls}) < len(calls):
        raise Failed("two tool calls with one id")
    return calls


def cities(calls: list[ToolCall]) -> str:
    return ", ".join(f"{call.name}({call.input.get('city')!r})" for call in calls)


def called_for(calls: list[ToolCall], *wanted: str) -> None:
    named = " ".join(str(call.input.get("city", "")).lower() for call in calls)
    missing = [city for city in wanted if city.lower() not in named]
    if missing:
        raise Failed(f"no call for {', '.join(missing)}: {cities(calls)}")


def transcripts(streamed: Streamed) -> str:
    return "valid " + " and ".join(f"{name} stream" for name in streamed.validated)


def clean(streamed: Streamed) -> ChatResponse:
    """The assembled answer of a stream that ended well and that the validators passed."""
    if streamed.error is not None:
        raise Failed(f"the stream failed: {streamed.error.message}")
    if streamed.problems:
        more = f" (and {len(streamed.problems) - 1} more)" if len(streamed.problems) > 1 else ""
        raise Failed(f"{streamed.problems[0]}{more}")
    if streamed.response is None:
        raise Failed("the stream never started")
    return streamed.response


def plausible(usage: Usage | None, max_tokens: int, what: str) -> Usage:
    if usage is None or (usage.prompt_tokens == 0 and usage.output_tokens == 0):
        raise Failed(f"{what}: no usage")
    if usage.prompt_tokens <= 0:
        raise Failed(f"{what}: {usage.prompt_tokens} input tokens")
    if usage.output_tokens <= 0:
        raise Failed(f"{what}: {usage.output_tokens} output tokens")
    if usage.output_tokens > max_tokens:
        raise Failed(f"{what}: {usage.output_tokens} output tokens, over max_tokens {max_tokens}")
    return usage


# --- the rows ---------------------------------------------------------------------------------


async def plain_text(probe: Probe, trace: Trace) -> str:
    response = await trace.send(probe, probe.request([user(PONG)]))
    text = says(response, "pong")
    stopped(response, "end_turn")
    return f"answered {excerpt(text)}"


async def system_prompt(probe: Probe, trace: Trace) -> str:
    response = await trace.send(probe, probe.request([user("What is the codeword?")], system=[Text(SYSTEM)]))
    return f"gave the codeword: {excerpt(says(response, CODEWORD))}"


async def multi_turn(probe: Probe, trace: Trace) -> str:
    messages = [
        user(f"My name is Orla {SURNAME}. Please remember it."),
        assistant("Noted."),
        user("What is my surname? Answer with the surname only."),
    ]
    response = await trace.send(probe, probe.request(messages))
    return f"remembered the earlier turn: {excerpt(says(response, SURNAME))}"


async def stop_sequence(probe: Probe, trace: Trace) -> str:
    response = await trace.send(probe, probe.request([user(COUNT)], stop=[STOP]))
    trace.unless_lost(("stop", "stop_sequences"), "the provider's API has no stop sequences")
    text = says(response, "6")
    if STOP in text:
        raise Failed(f"the answer goes past the stop sequence {STOP!r}: {excerpt(text)}")
    stopped(response, "stop_sequence", "end_turn")
    if response.stop_sequence not in (None, STOP):
        raise Failed(f"stop_sequence {response.stop_sequence!r}, expected {STOP!r}")
    return f"stopped before {STOP!r} ({response.stop_reason}): {excerpt(text)}"


async def max_tokens(probe: Probe, trace: Trace) -> str:
    response = await trace.send(probe, probe.request([user(STORY)], max_tokens=TINY_MAX_TOKENS))
    stopped(response, "max_tokens")
    if response.usage.output_tokens > TINY_MAX_TOKENS:
        raise Failed(f"{response.usage.output_tokens} output tokens, over max_tokens {TINY_MAX_TOKENS}")
    if response.usage.output_tokens == 0:
        return "stop reason max_tokens (the answer counts no output tokens: see the usage row)"
    return f"max_tokens after {response.usage.output_tokens} of {TINY_MAX_TOKENS} tokens"


async def tool_call(probe: Probe, trace: Trace) -> str:
    response = await trace.send(probe, probe.request([user(WEATHER_PARIS)], tools=[WEATHER]))
    calls = weather_calls(response)
    called_for(calls, "Paris")
    stopped(response, "tool_use")
    return cities(calls)


async def parallel_tool_calls(probe: Probe, trace: Trace) -> str:
    response = await trace.send(probe, probe.request([user(WEATHER_TWO)], tools=[WEATHER], tool_choice=PARALLEL))
    trace.unless_lost(("parallel_tool_calls",), "the provider's API cannot ask for parallel tool calls")
    calls = weather_calls(response)
    if len(calls) < 2:
        raise Failed(f"one call in the answer, not two: {cities(calls)}")
    called_for(calls, "Paris", "Tokyo")
    stopped(response, "tool_use")
    return f"{len(calls)} calls in one answer: {cities(calls)}"


async def tool_result(probe: Probe, trace: Trace) -> str:
    """A round trip: the model's own call (a made-up one would lack what some
    APIs require of a call sent back, Gemini's thought signature), then its result."""
    question = user(WEATHER_PARIS)
    asked = await trace.send(probe, probe.request([question], tools=[WEATHER]), "call")
    calls = [block for block in asked.content if isinstance(block, ToolCall)]
    if not calls:
        raise Failed(f"no tool call to answer (stop reason {asked.stop_reason!r}, text {excerpt(asked.text())})")
    results = user(*(ToolResult(call.id, [Text(TOOL_OUTPUT)]) for call in calls))
    response = await trace.send(probe, probe.request([question, assistant(*asked.content), results], tools=[WEATHER]))
    text = response.text()
    if not any(fact in text.lower() for fact in ("17", "violet")):
        raise Failed(f"the answer does not use the tool's result (17 degrees, violet fog): {excerpt(text)}")
    return f"used the result: {excerpt(text)}"


async def image(probe: Probe, trace: Trace) -> str:
    png = base64.b64encode(solid_png((220, 20, 20))).decode()
    question = "What colour is this image? Answer with one word."
    response = await trace.send(probe, probe.request([user(question, Image(media_type="image/png", data=png))]))
    trace.unless_lost(("image.media_type", "image"), "the provider's API takes no inline images")
    return f"saw {excerpt(says(response, COLOUR))}"


async def stream_text(probe: Probe, trace: Trace) -> str:
    streamed = await trace.stream(probe, probe.request([user(PONG)]))
    response = clean(streamed)
    text = says(response, "pong")
    stopped(response, "end_turn")
    return f"streamed {excerpt(text)}; {transcripts(streamed)}"


async def stream_tool_call(probe: Probe, trace: Trace) -> str:
    streamed = await trace.stream(probe, probe.request([user(WEATHER_PARIS)], tools=[WEATHER]))
    response = clean(streamed)
    calls = weather_calls(response)
    called_for(calls, "Paris")
    stopped(response, "tool_use")
    return f"streamed {cities(calls)}; {transcripts(streamed)}"


async def usage(probe: Probe, trace: Trace) -> str:
    """Usage in a whole answer and a streamed one to the same request: both
    present and within max_tokens, and the input counted alike (within a few
    tokens: some APIs count a stream's framing)."""
    whole = await trace.send(probe, probe.request([user(USAGE_PROMPT)], max_tokens=USAGE_MAX_TOKENS))
    plausible(whole.usage, USAGE_MAX_TOKENS, "whole answer")
    streamed = await trace.stream(probe, probe.request([user(USAGE_PROMPT)], max_tokens=USAGE_MAX_TOKENS))
    # A stream's order is the stream rows' to judge: here only the counts its events carried.
    failed = f" (which failed: {streamed.error.message})" if streamed.error is not None else ""
    plausible(streamed.usage, USAGE_MAX_TOKENS, "stream" + failed)
    a, b = whole.usage.prompt_tokens, streamed.usage.prompt_tokens
    if abs(a - b) > max(3, 0.1 * max(a, b)):
        raise Failed(f"input tokens differ: {a} whole, {b} streamed")
    return (f"whole {a} in / {whole.usage.output_tokens} out, "
            f"streamed {b} in / {streamed.usage.output_tokens} out (max_tokens {USAGE_MAX_TOKENS})")


async def error_shape(probe: Probe, trace: Trace) -> str:
    """A request for a model that does not exist: the upstream must refuse it
    with a 4xx the router relays as a client error, not a 5xx (which the router
    would retry, fail over and count against the provider's breaker)."""
    request = probe.request([user(PONG)], model=UNKNOWN_MODEL)
    try:
        response = await trace.send(probe, request)
    except UpstreamError as exc:
        trace.details["error"] = {"status": exc.status, "upstream_status": exc.upstream_status, "message": exc.message}
        if exc.upstream_status == NO_RESPONSE:
            raise Failed(f"no HTTP answer, the client gets {exc.status}: {exc.message}") from None
        if not 400 <= exc.upstream_status < 500:
            raise Failed(f"the upstream answered {exc.upstream_status}, the client gets {exc.status}: {exc.message}") from None
        if not 400 <= exc.status < 500:
            raise Failed(f"upstream {exc.upstream_status} becomes {exc.status} for the client: {exc.message}") from None
        return f"upstream {exc.upstream_status}, the client gets {exc.status}: {exc.message}"
    raise Failed(f"the upstream answered a request for the unknown model {UNKNOWN_MODEL!r}: {excerpt(response.text())}")


Check = Callable[[Probe, Trace], Awaitable[str]]


@dataclass(frozen=True)
class Row:
    name: str
    check: Check
    required: bool = True


# In the order they run; ``arguments.ROW_NAMES`` lists the same names for the parser.
ROWS: tuple[Row, ...] = (
    Row("plain_text", plain_text),
    Row("system_prompt", system_prompt),
    Row("multi_turn", multi_turn),
    Row("stop_sequence", stop_sequence),
    Row("max_tokens", max_tokens),
    Row("tool_call", tool_call),
    # A model may make its calls one answer at a time; clients cope, so this one only informs.
    Row("parallel_tool_calls", parallel_tool_calls, required=False),
    Row("tool_result", tool_result),
    Row("image", image),
    Row("stream_text", stream_text),
    Row("stream_tool_call", stream_tool_call),
    Row("usage", usage),
    Row("error_shape", error_shape),
)
