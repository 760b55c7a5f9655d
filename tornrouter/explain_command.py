"""``tornrouter explain --conf FILE REQUEST.json``: a dry run from the command
line.  The router's parts are built from the config (plugins and classifiers
set up, as a start does) but nothing listens and nothing is logged; the
request file is read as a body of the API ``--api`` names, or the API its
fields point to, and explained by the core the dry-run header uses
(``explain.explain``), which prints as the header's answer would."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import secrets
import sys
from typing import Any

import orjson

from .config import Config
from .context import RequestRecord
from .errors import RouterError
from .explain import explain
from .formats import codec_for
from .handlers.responses import parse
from .runtime import Runtime

log = logging.getLogger("tornrouter")

# --api: the endpoint each API is served on, and its codec.
APIS = {"chat": ("/v1/chat/completions", "openai"), "messages": ("/v1/messages", "anthropic"),
        "responses": ("/v1/responses", "responses")}
ENDPOINT_API = {endpoint: api for api, (endpoint, _) in APIS.items()}
ANTHROPIC_BLOCKS = frozenset({"tool_use", "tool_result", "thinking", "redacted_thinking", "document"})
OPENAI_ROLES = frozenset({"system", "developer", "tool"})


def infer_api(body: Any) -> str:
    """The API a body is written for: ``input`` means Responses; a top-level
    ``system``, or Anthropic's block types, Messages; else Chat Completions
    (whose ``system``, ``developer`` and ``tool`` roles Messages has not)."""
    if not isinstance(body, dict):
        return "chat"
    if "input" in body and "messages" not in body:
        return "responses"
    messages = body.get("messages") if isinstance(body.get("messages"), list) else []
    if any(isinstance(m, dict) and m.get("role") in OPENAI_ROLES for m in messages):
        return "chat"
    if "system" in body:
        return "messages"
    for message in messages:
        content = message.get("content") if isinstance(message, dict) else None
        for block in content if isinstance(content, list) else ():
            if isinstance(block, dict) and (block.get("type") in ANTHROPIC_BLOCKS or "source" in block):
                return "messages"
    return "chat"


async def explain_body(runtime: Runtime, raw: bytes, api: str, key: str | None, request_id: str) -> dict[str, Any]:
    """The explanation of the body ``raw`` of ``api``, as sent with ``key``
    (the admin key explains any model).  Raises the ``RouterError`` a dry run
    would answer with (a bad body's 400, a refused key or model)."""
    endpoint, format_name = APIS[api]
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    access = runtime.access
    as_admin = bool(key) and not access.admin.open and access.admin.matches(headers)
    client_key = None if as_admin else access.authenticate(headers)
    record = RequestRecord(request_id, endpoint, runtime.http)
    record.dry_run = True
    record.key_name = client_key.name if client_key is not None else None
    if api == "responses":  # previous_response_id: the conversation comes from the store, as the endpoint reads it
        record.ctx.request = (await parse(raw, runtime.responses, record.key_name)).request
    else:
        record.ctx.request = codec_for(format_name).parse_request(raw)
    runtime.cache.read_headers(record, {})
    return await explain(runtime, record, client_key)


def run(config: Config, request_path: str, api: str | None, key: str | None, request_id: str | None) -> int:
    """The command: 0 and the explanation on stdout, or 1 and why not on stderr."""
    try:
        with open(request_path, "rb") as f:
            raw = f.read()
    except OSError as exc:
        print(f"tornrouter explain: {exc}", file=sys.stderr)
        return 2
    if api is None:
        try:
            api = infer_api(orjson.loads(raw))
        except orjson.JSONDecodeError:
            api = "chat"  # the codec says what is wrong with it, as the endpoint would
    return asyncio.run(_run(config, raw, api, key, request_id or secrets.token_hex(8)))


async def _run(config: Config, raw: bytes, api: str, key: str | None, request_id: str) -> int:
    runtime = await Runtime.start(dataclasses.replace(config, request_log=None))
    try:
        explanation = await explain_body(runtime, raw, api, key, request_id)
    except RouterError as exc:
        print(f"tornrouter explain: {exc.status}: {exc.message}", file=sys.stderr)
        return 1
    finally:
        await runtime.aclose()
    sys.stdout.write(orjson.dumps({"api": api, **explanation}, option=orjson.OPT_INDENT_2).decode() + "\n")
    return 0
