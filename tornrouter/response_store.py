"""Where ``POST /v1/responses`` keeps answers for ``previous_response_id``.

The Responses API lets a client send only the new input and name the response
it follows (``previous_response_id``): the server holds the conversation.  The
endpoint calls ``expand`` on every request, before anything else reads it,
and ``save`` once the client has a whole answer.  A store that keeps answers
puts the earlier turns in front of the request's own and removes the id from
``request.extra``; this one keeps nothing, so the id stays: an upstream of
the Responses API resolves it against its own store, any other refuses the
request (400 naming ``previous_response_id``).
"""

from __future__ import annotations

from .canonical import ChatRequest, ChatResponse


class ResponseStore:
    """Keeps nothing.  Both hooks may be overridden by a store that does."""

    async def expand(self, request: ChatRequest) -> None:
        """Put the conversation ``request`` continues (``request.extra["previous_response_id"]``)
        in front of its messages.  Raise ``InvalidRequest`` for an id the store
        should know and does not.  Called before admission, classifiers and plugins."""

    async def save(self, response_id: str, request: ChatRequest, response: ChatResponse) -> None:
        """Keep ``response`` (as the client got it under ``response_id``) with
        the ``request`` it answers.  Called after the answer was sent, once;
        what it raises is logged, not sent."""
