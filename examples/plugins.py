"""Complete examples of plugins and a classifier (see the README).

Use them from a config with::

    classifiers:
      - {use: examples.plugins.Shouting}
    plugins:
      - use: examples.plugins.Canned
        models: ["*"]
        settings: {replies: {ping: pong}}
      - use: examples.plugins.Footer
        models: ["claude-*"]
        settings: {text: "\n-- via tornrouter"}
      - use: examples.plugins.AuditTrail
        settings: {path: logs/audit.jsonl}
"""

from __future__ import annotations

import json
import time

from marshmallow import RAISE, Schema, fields

from tornrouter.canonical import ChatResponse, Text
from tornrouter.classifiers import BaseClassifier
from tornrouter.plugins import BasePlugin, Flow


class Canned(BasePlugin):
    """Answers some prompts itself, without calling a provider."""

    id = "canned"

    class Settings(Schema):  # validated at start: a typo in the config is an error
        class Meta:
            unknown = RAISE

        replies = fields.Dict(keys=fields.String(), values=fields.String(), required=True)

    async def pre_request(self, ctx) -> Flow:
        reply = self.settings["replies"].get(ctx.request.last_user_text().strip().lower())
        if reply is None:
            return Flow.CONTINUE
        ctx.response = ChatResponse.from_text(reply, model=ctx.request.model)
        return Flow.STOP  # routing and the provider call are skipped


class Footer(BasePlugin):
    """Appends ``text`` to every text answer, after the provider has answered."""

    id = "footer"

    async def post_response(self, ctx) -> Flow:
        blocks = [b for b in ctx.response.content if isinstance(b, Text)]
        if not blocks:
            return Flow.CONTINUE
        blocks[-1].text += self.settings.get("text", "")
        return Flow.MODIFIED


class AuditTrail(BasePlugin):
    """Appends one JSON line per answered request to the file ``path``: when,
    the model that answered, the tags, the tokens.

    The file is held open for all the instance's requests: opened in ``setup``
    (a path that cannot be opened refuses the start or the reload, naming this
    entry) and closed in ``close``, after the instance's last request.  Lines
    are written whole (line buffering, append mode), so the instances of
    ``--processes`` workers, or of a reload and the config it replaces, may
    share the file."""

    id = "audit"

    class Settings(Schema):
        class Meta:
            unknown = RAISE

        path = fields.String(required=True)

    async def setup(self) -> None:
        self._file = open(self.settings["path"], "a", buffering=1, encoding="utf-8")

    async def on_end(self, ctx) -> Flow:
        usage = ctx.response.usage
        # One short line to a local file: quick enough for the event loop (the
        # request log, whose lines hold whole conversations, has a thread).
        self._file.write(json.dumps({
            "ts": round(time.time(), 3),
            "model": ctx.response.model,
            "tags": sorted(ctx.request.tags),
            "tokens": {"input": usage.input_tokens, "output": usage.output_tokens},
        }) + "\n")
        return Flow.CONTINUE  # a side effect: the request is unchanged

    async def close(self) -> None:
        self._file.close()


class Shouting(BaseClassifier):
    """Tags requests whose last user message is in capitals as ``shouting``."""

    default_tag = "shouting"

    async def classify(self, request):
        text = request.last_user_text()
        return {self.tag} if text.isupper() else set()
