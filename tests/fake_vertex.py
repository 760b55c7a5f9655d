"""A fake Google Vertex AI on loopback, with the OAuth token endpoint a
service account gets its access tokens from.

``POST /token`` takes a service account's signed JWT (the
``jwt-bearer`` grant google-auth makes), verifies its signature with the
account's public key, and issues an access token that expires in
``token_ttl_s``.  The model endpoints refuse, with Google's 401, a request
without a bearer token it issued and has not seen expire:
``publishers/anthropic/models/{model}:rawPredict`` and ``:streamRawPredict``
answer as Anthropic does, after checking the body names its
``anthropic_version`` and no ``model`` (Vertex takes it from the URL);
``publishers/google/models/{model}:generateContent`` and
``:streamGenerateContent`` answer as ``tests/fake_gemini.py`` does.
"""

from __future__ import annotations

import json
import time
from typing import Any

import google.auth.jwt
import tornado.web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from tornado.httpserver import HTTPServer
from tornado.testing import bind_unused_port

from tests.fake_gemini import _GeminiHandler
from tests.fake_upstream import FakeUpstream, Reply, _Handler

PROJECT = "acme-llm"
GOOGLE_TOKEN_AUDIENCE = "https://oauth2.googleapis.com/token"  # what google-auth signs for, wherever it posts
REGION = "us-east5"
UNAUTHENTICATED = {"error": {"code": 401, "message": (
    "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid "
    "authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project."),
    "status": "UNAUTHENTICATED"}}


def service_account(token_uri: str) -> tuple[dict[str, Any], str]:
    """A fresh service-account key file's contents, and its public key (PEM)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    public = key.public_key().public_bytes(serialization.Encoding.PEM,
                                           serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    info = {"type": "service_account", "project_id": PROJECT, "private_key_id": "k1", "private_key": private,
            "client_email": f"router@{PROJECT}.iam.gserviceaccount.com", "client_id": "1234567890",
            "token_uri": token_uri}
    return info, public


class _TokenHandler(tornado.web.RequestHandler):
    def initialize(self, upstream: FakeVertex) -> None:
        self.upstream = upstream

    def post(self) -> None:
        fake = self.upstream
        fake.token_requests += 1
        try:
            claims = google.auth.jwt.decode(self.get_body_argument("assertion"), certs=fake.public_key,
                                            audience=GOOGLE_TOKEN_AUDIENCE)
        except ValueError as exc:
            self.set_status(400)
            self.finish({"error": "invalid_grant", "error_description": f"Invalid JWT Signature. ({exc})"})
            return
        assert self.get_body_argument("grant_type") == "urn:ietf:params:oauth:grant-type:jwt-bearer"
        assert "cloud-platform" in claims["scope"]
        token = f"ya29.fake-vertex-token-{fake.token_requests}-SECRET"
        fake.tokens[token] = time.time() + fake.token_ttl_s
        self.finish({"access_token": token, "expires_in": fake.token_ttl_s, "token_type": "Bearer"})


def _refusal(handler: tornado.web.RequestHandler, fake: FakeVertex) -> Reply | None:
    bearer = handler.request.headers.get("Authorization", "")
    token = bearer.removeprefix("Bearer ")
    if not bearer.startswith("Bearer ") or fake.tokens.get(token, 0) < time.time():
        return Reply(status=401, body=UNAUTHENTICATED)
    fake.authorized.append(token)
    return None


class _ClaudeHandler(_Handler):
    async def post(self, model: str, method: str) -> None:  # type: ignore[override]
        fake: FakeVertex = self.upstream  # type: ignore[assignment]
        refusal = _refusal(self, fake)
        if refusal is None:
            body = json.loads(self.request.body)
            if body.get("anthropic_version") != "vertex-2023-10-16":
                refusal = Reply(status=400, body={"type": "error", "error": {
                    "type": "invalid_request_error", "message": "anthropic_version: field required"}})
            elif "model" in body:
                refusal = Reply(status=400, body={"type": "error", "error": {
                    "type": "invalid_request_error", "message": "model: Extra inputs are not permitted"}})
            elif bool(body.get("stream")) != (method == "streamRawPredict"):
                refusal = Reply(status=400, body={"type": "error", "error": {
                    "type": "invalid_request_error", "message": f"stream does not match :{method}"}})
        if refusal is not None:
            fake.script.appendleft(refusal)
        await super().post()


class _VertexGeminiHandler(_GeminiHandler):
    async def post(self, model: str, method: str) -> None:  # type: ignore[override]
        refusal = _refusal(self, self.upstream)  # type: ignore[arg-type]
        if refusal is not None:
            self.upstream.script.appendleft(refusal)
        await super().post(model, method)


class FakeVertex(FakeUpstream):
    """``token_ttl_s``: how long the tokens it issues last."""

    def __init__(self, token_ttl_s: int = 3600) -> None:
        super().__init__()
        self.token_ttl_s = token_ttl_s
        self.tokens: dict[str, float] = {}  # issued token -> expiry (Unix time)
        self.token_requests = 0
        self.authorized: list[str] = []  # the token of each request the model endpoints took
        self.key = None  # the Gemini handler's API key: Vertex takes tokens instead
        self.issued: set[str] = set()
        self.public_key = ""

    @property
    def token_uri(self) -> str:
        return self.url + "/token"

    def service_account_file(self, path) -> str:
        info, self.public_key = service_account(self.token_uri)
        path.write_text(json.dumps(info))
        return str(path)

    def start(self) -> FakeVertex:
        models = rf"/v1/projects/{PROJECT}/locations/{REGION}/publishers"
        app = tornado.web.Application([
            (r"/token", _TokenHandler, {"upstream": self}),
            (models + r"/anthropic/models/([^/:]+):(rawPredict|streamRawPredict)", _ClaudeHandler,
             {"upstream": self, "kind": "anthropic"}),
            (models + r"/google/models/([^/:]+):(generateContent|streamGenerateContent)", _VertexGeminiHandler,
             {"upstream": self, "kind": "gemini"}),
        ])
        sock, self.port = bind_unused_port()
        self.server = HTTPServer(app)
        self.server.add_socket(sock)
        return self
