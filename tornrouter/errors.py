"""The router's exception tree.

::

    RouterError                  status, message; rendered in the client's API shape
    ├── InvalidRequest           400  a body that does not match the API (names the field)
    │   ├── BodyTooLarge         413  over server.max_body_bytes
    │   └── PreviousResponseNotFound
    │                            400  previous_response_id names no stored response of the caller's
    ├── NoProvider               400  no route, no default for the model
    ├── PluginFailed             500  a Start/PreRouting hook raised
    ├── ClassifierFailed         500  a classifier raised (no routing on tags it could not tell)
    ├── NoResponse               500  the pipeline stopped without a response
    ├── Overloaded               503  a provider's queue, or the router, is full
    ├── Unauthorized             401  no client key, or not one of the config's
    ├── Forbidden                403  the key may not use that model (or read that usage)
    ├── NotFound                 404  no such model, or no stored response of the caller's by that id
    ├── RateLimited              429  over a key's or a model's limit; Retry-After
    │   └── BudgetExceeded       429  a key's daily or monthly budget is spent
    ├── StateUnavailable         503  the shared state is unreachable and on_error is fail_closed,
    │                                 or stored responses are (they have no way around it)
    └── UpstreamError            the provider failed; ``status`` is what the client gets:
        │                        the upstream's own 4xx, else 502; with ``relay``, the
        │                        upstream's own status and error body, as they came
        └── UpstreamTimeout      504

``error_type`` is the ``type`` in the error body: ``router_error`` for errors the
router raises itself; an upstream's own error type for errors it relays.
Provider transport errors are mapped to ``UpstreamError`` at exactly one place,
``providers.base``.
"""

from __future__ import annotations

import math


class RouterError(Exception):
    status = 500
    code: str | None = None

    def __init__(self, message: str, *, param: str | None = None, error_type: str | None = "router_error") -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.error_type = error_type

    @property
    def headers(self) -> dict[str, str]:
        """Extra response headers (``Retry-After``)."""
        return {}


class InvalidRequest(RouterError):
    status = 400
    code = "invalid_request"

    def __init__(self, param: str | None, message: str) -> None:
        super().__init__(f"{param}: {message}" if param else message, param=param)


class BodyTooLarge(InvalidRequest):
    status = 413
    code = "request_too_large"

    def __init__(self, limit: int) -> None:
        super().__init__(None, f"request body exceeds the limit of {limit} bytes")


class PreviousResponseNotFound(InvalidRequest):
    """Typed as OpenAI types it, for clients that tell it from other 400s."""

    code = "previous_response_not_found"

    def __init__(self, message: str) -> None:
        super().__init__("previous_response_id", message)
        self.error_type = "invalid_request_error"


class NoProvider(RouterError):
    status = 400
    code = "no_provider"

    def __init__(self, model: str) -> None:
        super().__init__(f"no provider configured for model '{model}'", param="model")


class PluginFailed(RouterError):
    status = 500
    code = "plugin_failed"

    def __init__(self, plugin_id: str, error: BaseException) -> None:
        super().__init__(f"plugin '{plugin_id}' failed: {error}")
        self.plugin_id = plugin_id


class ClassifierFailed(RouterError):
    status = 500
    code = "classifier_failed"

    def __init__(self, name: str, error: BaseException) -> None:
        super().__init__(f"classifier '{name}' failed: {error}")


class NoResponse(RouterError):
    status = 500
    code = "no_response"

    def __init__(self) -> None:
        super().__init__("pipeline stopped without producing a response")


class Overloaded(RouterError):
    status = 503
    code = "overloaded"

    @property
    def headers(self) -> dict[str, str]:
        return {"Retry-After": "1"}


class Unauthorized(RouterError):
    status = 401
    code = "invalid_api_key"


class Forbidden(RouterError):
    status = 403
    code = "permission_denied"


class NotFound(RouterError):
    """Nothing by that id for this caller.  ``error_type`` defaults to OpenAI's
    (``invalid_request_error``, as its API answers a 404); an Anthropic-shaped
    answer passes ``not_found_error``."""

    status = 404

    def __init__(self, message: str, *, param: str | None = None, code: str | None = "not_found",
                 error_type: str = "invalid_request_error") -> None:
        super().__init__(message, param=param, error_type=error_type)
        self.code = code


class RateLimited(RouterError):
    """``limit`` names what was exceeded (``rpm``, ``tpm``, ``concurrency``,
    ``budget_day``, ``budget_month``) and ``scope`` whose limit it was (``key``
    or ``model``), for the metrics; ``retry_after_s`` becomes ``Retry-After``."""

    status = 429
    code = "rate_limit_exceeded"

    def __init__(self, message: str, *, retry_after_s: float, limit: str, scope: str) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s
        self.limit = limit
        self.scope = scope

    @property
    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(max(1, math.ceil(self.retry_after_s)))}


class BudgetExceeded(RateLimited):
    code = "budget_exceeded"


class StateUnavailable(RouterError):
    status = 503
    code = "state_unavailable"

    @property
    def headers(self) -> dict[str, str]:
        return {"Retry-After": "1"}


class UpstreamError(RouterError):
    """The provider could not give an answer.

    ``status`` is the status the client receives: the upstream's own for the
    4xx a client must see (invalid request, auth, not found, too large, rate
    limit), 502 for everything else.  ``upstream_status`` is what the upstream
    said (599 when there was no HTTP response at all).  ``body`` is the body of
    an error status as the request log keeps it (decoded, capped, the key
    redacted): the client's message only summarises a body that is not the
    API's error.

    ``relay``, when set, is the error body the client gets instead of one
    rendered from ``message``, with the upstream's own status: an upstream's
    error relayed to a client of the same API, unmodified (agents match its
    wording), or a context overflow reworded for the client's API
    (``formats.overflow``).  ``message`` still names the provider, for the log.
    """

    code = "upstream_error"
    RELAYED = frozenset({400, 401, 403, 404, 413, 422, 429})

    def __init__(
        self,
        provider: str,
        message: str,
        *,
        upstream_status: int = 599,
        error_type: str | None = "router_error",
        retry_after: str | None = None,
        body: str | None = None,
        relay: bytes | None = None,
    ) -> None:
        super().__init__(f"provider '{provider}': {message}", error_type=error_type)
        self.provider = provider
        self.upstream_status = upstream_status
        self.retry_after = retry_after
        self.body = body
        self.relay = relay
        self.status = upstream_status if relay is not None or upstream_status in self.RELAYED else 502

    @property
    def headers(self) -> dict[str, str]:
        return {"Retry-After": self.retry_after} if self.retry_after else {}


class UpstreamTimeout(UpstreamError):
    code = "upstream_timeout"

    def __init__(self, provider: str, message: str) -> None:
        super().__init__(provider, message)
        self.status = 504


class ConfigError(Exception):
    """A config file that cannot be served; ``problems`` holds one line per problem."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems
