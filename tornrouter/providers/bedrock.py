"""AWS Bedrock runtime: Anthropic models through ``InvokeModel``
(``POST {base_url}/model/{modelId}/invoke``) and
``InvokeModelWithResponseStream`` (``.../invoke-with-response-stream``), with
Anthropic's Messages body (``anthropic_version: bedrock-2023-05-31``, the
model in the URL), signed with SigV4 (``aws.py``).  ``base_url`` defaults to
``https://bedrock-runtime.{region}.amazonaws.com``.

The stream is AWS's event stream, each ``chunk`` event an Anthropic stream
event in base64: read by botocore's parser into the Anthropic events, it is
then the Anthropic stream (relayed to a Messages client as SSE) under the same
rules as the other kinds.  ``cache_control`` goes through as Anthropic's own.
Other models go through the Converse API (``.../converse``,
``.../converse-stream``) with ``formats.converse``, whose stream events come
in the same framing.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import orjson
from tornado.httputil import HTTPHeaders

from ..canonical import ChatRequest, ChatResponse
from ..config import ProviderConfig
from ..errors import UpstreamError
from ..formats import codec_for
from ..formats.base import VERSION_HEADERS
from ..formats.converse.stream import ConverseStreamDecoder
from .anthropic import BETA, AnthropicProvider
from .streaming import EventStream

BEDROCK_ANTHROPIC_VERSION = "bedrock-2023-05-31"
CONVERSE = codec_for("converse")
# Bedrock's error types (x-amzn-ErrorType), as the Anthropic ones.
ERROR_TYPES = {
    "ValidationException": "invalid_request_error",
    "InvalidSignatureException": "permission_error",
    "ExpiredTokenException": "authentication_error",
    "AccessDeniedException": "permission_error",
    "UnrecognizedClientException": "authentication_error",
    "ResourceNotFoundException": "not_found_error",
    "ThrottlingException": "rate_limit_error",
    "ServiceQuotaExceededException": "rate_limit_error",
    "ModelTimeoutException": "timeout_error",
    "ServiceUnavailableException": "overloaded_error",
}


class BedrockProvider(AnthropicProvider):
    kind = "bedrock"
    counts_tokens = False  # no Anthropic count_tokens here: the router estimates
    relays_errors = False  # AWS's errors, not Anthropic's

    @property
    def vendor(self) -> str:
        return "anthropic"

    def __init__(self, config: ProviderConfig, http: Any) -> None:
        from .aws import AWSSigner  # the bedrock extra, imported only when one is configured

        super().__init__(config, http)
        base = config.base_url or f"https://bedrock-runtime.{config.region}.amazonaws.com"
        self.url = base.rstrip("/") + "/model"
        self.signer = AWSSigner(config.name, config.region or "", config.profile, config.role_arn)

    def auth_headers(self) -> dict[str, str]:
        return {}

    @staticmethod
    def invokes(request: ChatRequest) -> bool:
        """Anthropic's models (a model id, inference profile or ARN naming them)
        take their own body through InvokeModel; the others go through Converse."""
        return "anthropic" in request.model

    def endpoint(self, request: ChatRequest) -> str:
        if self.invokes(request):
            method = "invoke-with-response-stream" if request.stream else "invoke"
        else:
            method = "converse-stream" if request.stream else "converse"
        return f"{self.url}/{quote(request.model, safe='')}/{method}"

    def encode(self, request: ChatRequest) -> tuple[dict[str, Any], list[str]]:
        if not self.invokes(request):
            body, lossy = CONVERSE.encode_request(request)
            lossy += [name for name in request.headers if name not in VERSION_HEADERS and name not in lossy]
            return body, lossy
        body, lossy = super().encode(request)
        del body["model"]
        body.pop("stream", None)
        body["anthropic_version"] = BEDROCK_ANTHROPIC_VERSION
        betas = [flag.strip() for flag in request.headers.get(BETA, "").split(",") if flag.strip()]
        if betas:  # Bedrock takes a client's beta flags in the body
            body["anthropic_beta"] = betas
        lossy += [name for name in request.headers if name not in (BETA, *VERSION_HEADERS) and name not in lossy]
        return body, lossy

    def build(self, request: ChatRequest) -> tuple[Any, list[str]]:
        http_request, lossy = super().build(request)
        headers = {"Content-Type": "application/json", **self.config.headers}
        if request.stream:
            headers["Accept"] = "application/vnd.amazon.eventstream"
        http_request.headers = self.signer.sign(http_request.url, http_request.body, headers)
        return http_request, lossy

    def decode(self, payload: Any, request: ChatRequest) -> ChatResponse:
        if self.invokes(request):
            return super().decode(payload, request)
        response = CONVERSE.decode_response(payload)
        response.model = request.model
        return response

    def stream_decoder(self, request: ChatRequest) -> Any:
        return super().stream_decoder(request) if self.invokes(request) else ConverseStreamDecoder(request.model)

    def framing(self) -> Any:
        from .aws import EventStreamFraming

        return EventStreamFraming()

    async def send(self, request: ChatRequest) -> tuple[ChatResponse, list[str]]:
        await self.signer.refresh()
        return await super().send(request)

    async def open_stream(self, request: ChatRequest) -> tuple[EventStream, list[str]]:
        await self.signer.refresh()
        stream, lossy = await super().open_stream(request)
        if not self.invokes(request):
            stream.format = "converse"  # no client's stream: translated for every client
        return stream, lossy

    def redacted(self, body: bytes) -> bytes:
        for secret in self.signer.secrets():
            body = body.replace(secret.encode(), b"***")
        return body

    def status_error(self, status: int, body: bytes, headers: HTTPHeaders, request: ChatRequest) -> UpstreamError:
        """Bedrock's ``{"message"}`` with its type in ``x-amzn-ErrorType``, read
        as the Anthropic error it stands for."""
        try:
            data = orjson.loads(body)
        except ValueError:
            data = None
        if isinstance(data, dict) and isinstance(data.get("message") or data.get("Message"), str):
            name = (headers.get("x-amzn-ErrorType") or "").split(":", 1)[0]
            body = orjson.dumps({"type": "error", "error": {
                "type": ERROR_TYPES.get(name),  # unknown: the client's API names it by the status
                "message": f"{name}: {data.get('message') or data.get('Message')}" if name else data.get("message")}})
        return super().status_error(status, body, headers, request)
