"""A complete example of a plugin and a classifier (see the README).

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
"""

from __future__ import annotations

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


class Shouting(BaseClassifier):
    """Tags requests whose last user message is in capitals as ``shouting``."""

    default_tag = "shouting"

    async def classify(self, request):
        text = request.last_user_text()
        return {self.tag} if text.isupper() else set()
