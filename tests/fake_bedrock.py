"""A fake AWS Bedrock runtime on loopback that checks what Bedrock checks.

``POST /model/{modelId}/invoke`` and ``/invoke-with-response-stream`` verify
the request's SigV4 signature with botocore (the access key, the credential
scope's region and service, the signed headers and the body's hash; a session
token when the credentials have one) and refuse a bad one with Bedrock's 403.
An InvokeModel body must be Anthropic's with ``anthropic_version:
bedrock-2023-05-31`` and neither ``model`` nor ``stream``; a Converse body
must fit the Converse input shape of botocore's service model (Bedrock's 400
otherwise).  The answer is
Anthropic's; a stream is framed as ``application/vnd.amazon.eventstream``
(each Anthropic event, base64, in a ``chunk`` event), written here frame by
frame (``event_frame``, ``exception_frame``).
"""

from __future__ import annotations

import base64
import binascii
import json
import struct
from typing import Any

import botocore.session
import tornado.web
from botocore.auth import SigV4Auth
from botocore.validate import ParamValidator
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from tornado.httpserver import HTTPServer
from tornado.testing import bind_unused_port

from tests.fake_upstream import FakeUpstream, Reply, _Handler, anthropic_sse, stream_text, ANTHROPIC_TEXT

ACCESS_KEY = "AKIAFAKEBEDROCK00001"
SECRET_KEY = "fake/bedrock/secret-key-SECRET"
REGION = "us-east-1"


def _header(name: str, value: str) -> bytes:
    raw_name, raw_value = name.encode(), value.encode()
    return struct.pack("!B", len(raw_name)) + raw_name + b"\x07" + struct.pack("!H", len(raw_value)) + raw_value


def frame(headers: dict[str, str], payload: bytes) -> bytes:
    """One event-stream message: prelude (lengths and their CRC), headers, payload, CRC."""
    head = b"".join(_header(k, v) for k, v in headers.items())
    total = 12 + len(head) + len(payload) + 4
    prelude = struct.pack("!II", total, len(head))
    prelude += struct.pack("!I", binascii.crc32(prelude) & 0xFFFFFFFF)
    message = prelude + head + payload
    return message + struct.pack("!I", binascii.crc32(message) & 0xFFFFFFFF)


def event_frame(anthropic_event: dict[str, Any]) -> bytes:
    data = base64.b64encode(json.dumps(anthropic_event).encode()).decode()
    return frame({":event-type": "chunk", ":content-type": "application/json", ":message-type": "event"},
                 json.dumps({"bytes": data}).encode())


def exception_frame(name: str, message: str) -> bytes:
    return frame({":exception-type": name, ":content-type": "application/json", ":message-type": "exception"},
                 json.dumps({"message": message}).encode())


def frames_of(sse: list[bytes]) -> list[bytes]:
    """An Anthropic SSE stream (``tests/fake_upstream.py``) as Bedrock frames it."""
    out = []
    for raw in sse:
        data = next(line[6:] for line in raw.decode().split("\n") if line.startswith("data: "))
        out.append(event_frame(json.loads(data)))
    return out


CONVERSE_TEXT = "Hello from the fake Bedrock Converse upstream."
CONVERSE_INPUT = botocore.session.get_session().get_service_model("bedrock-runtime").operation_model("Converse").input_shape


def converse_problem(body: dict[str, Any], model: str = "model") -> str | None:
    """What Converse refuses in ``body``: anything its shape in botocore's
    service model (the API's own definition) does not allow, and a conversation
    that does not start with the user or does not alternate."""
    report = ParamValidator().validate({"modelId": model, **body}, CONVERSE_INPUT)
    if report.has_errors():
        return report.generate_report()
    messages = body.get("messages") or []
    if not messages or messages[0]["role"] != "user":
        return "A conversation must start with a user message. Try again with a conversation that starts with a user message."
    for i, message in enumerate(messages):
        if i and message["role"] == messages[i - 1]["role"]:
            return "A conversation must alternate between user and assistant roles."
    return None


def converse_user_text(body: dict[str, Any]) -> str:
    for message in reversed(body.get("messages") or []):
        if message["role"] == "user":
            return "".join(b.get("text", "") for b in message["content"])
    return ""


def converse_response(text: str | None = CONVERSE_TEXT, tool_use: dict[str, Any] | None = None,
                      stop: str = "end_turn") -> dict[str, Any]:
    content: list[dict[str, Any]] = [{"text": text}] if text is not None else []
    if tool_use is not None:
        content.append({"toolUse": tool_use})
        stop = "tool_use"
    return {"output": {"message": {"role": "assistant", "content": content}}, "stopReason": stop,
            "usage": {"inputTokens": 12, "outputTokens": 8, "totalTokens": 20, "cacheReadInputTokens": 4,
                      "cacheWriteInputTokens": 0},
            "metrics": {"latencyMs": 321}}


def converse_event(kind: str, payload: dict[str, Any]) -> bytes:
    return frame({":event-type": kind, ":content-type": "application/json", ":message-type": "event"},
                 json.dumps(payload).encode())


def converse_frames(text: str | None, tool_use: dict[str, Any] | None = None, stop: str = "end_turn") -> list[bytes]:
    """A ConverseStream as Bedrock frames it: text a word a delta (no block
    start), a tool use's start and its input in two pieces, the stop, the usage."""
    out = [converse_event("messageStart", {"role": "assistant"})]
    index = 0
    if text:
        words = text.split(" ")
        for n, word in enumerate(words):
            out.append(converse_event("contentBlockDelta", {"delta": {"text": word + (" " if n < len(words) - 1 else "")},
                                                           "contentBlockIndex": 0}))
        out.append(converse_event("contentBlockStop", {"contentBlockIndex": 0}))
        index = 1
    if tool_use is not None:
        stop = "tool_use"
        arguments = json.dumps(tool_use["input"])
        out.append(converse_event("contentBlockStart", {"start": {"toolUse": {"toolUseId": tool_use["toolUseId"], "name": tool_use["name"]}},
                                                        "contentBlockIndex": index}))
        half = len(arguments) // 2
        for piece in (arguments[:half], arguments[half:]):
            out.append(converse_event("contentBlockDelta", {"delta": {"toolUse": {"input": piece}}, "contentBlockIndex": index}))
        out.append(converse_event("contentBlockStop", {"contentBlockIndex": index}))
    out.append(converse_event("messageStop", {"stopReason": stop}))
    out.append(converse_event("metadata", {"usage": {"inputTokens": 12, "outputTokens": 8, "totalTokens": 20},
                                           "metrics": {"latencyMs": 321}}))
    return out


def bedrock_error(message: str) -> dict[str, Any]:
    return {"message": message}


def signed_by(request: Any, credentials: Credentials, region: str, service: str) -> bool:
    """Whether ``request`` (a Tornado request) carries a valid SigV4 signature
    of ``credentials`` for ``service`` in ``region``, recomputed with botocore."""
    try:
        scheme, rest = request.headers.get("Authorization", "").split(" ", 1)
        parts = dict(p.strip().split("=", 1) for p in rest.split(","))
        key, _, scope_region, scope_service, _ = parts["Credential"].split("/")
    except (ValueError, KeyError):
        return False
    if scheme != "AWS4-HMAC-SHA256" or key != credentials.access_key or (scope_region, scope_service) != (region, service):
        return False
    if credentials.token is not None and request.headers.get("X-Amz-Security-Token") != credentials.token:
        return False
    signed = parts["SignedHeaders"].split(";")
    if "x-amz-date" not in signed or "host" not in signed:
        return False
    headers = {name: request.headers.get(name, "") for name in signed}
    aws = AWSRequest(method=request.method, url=f"http://{request.host}{request.uri}", data=request.body, headers=headers)
    aws.context["timestamp"] = request.headers.get("X-Amz-Date", "")
    signer = SigV4Auth(credentials, service, region)
    return signer.signature(signer.string_to_sign(aws, signer.canonical_request(aws)), aws) == parts["Signature"]


ROLE_ARN = "arn:aws:iam::123456789012:role/tornrouter-bedrock"
ROLE_KEY, ROLE_SECRET, ROLE_TOKEN = "ASIAFAKEROLE00000001", "role-secret-SECRET", "role-session-token-SECRET"


class _STSHandler(tornado.web.RequestHandler):
    """``AssumeRole`` (the query protocol): the source credentials' signature
    checked, the role's temporary credentials issued for an hour."""

    def initialize(self, upstream: FakeBedrock) -> None:
        self.upstream = upstream

    def post(self) -> None:
        fake = self.upstream
        if not signed_by(self.request, Credentials(ACCESS_KEY, SECRET_KEY), "us-east-1", "sts") or \
                self.get_body_argument("Action") != "AssumeRole" or self.get_body_argument("RoleArn") != ROLE_ARN:
            self.set_status(403)
            self.finish("<ErrorResponse><Error><Type>Sender</Type><Code>AccessDenied</Code>"
                        "<Message>not authorized to perform sts:AssumeRole</Message></Error></ErrorResponse>")
            return
        fake.assumed += 1
        session = self.get_body_argument("RoleSessionName")
        self.set_header("Content-Type", "text/xml")
        self.finish(
            '<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><AssumeRoleResult><Credentials>'
            f"<AccessKeyId>{ROLE_KEY}</AccessKeyId><SecretAccessKey>{ROLE_SECRET}</SecretAccessKey>"
            f"<SessionToken>{ROLE_TOKEN}</SessionToken><Expiration>{_in_an_hour()}</Expiration></Credentials>"
            f"<AssumedRoleUser><AssumedRoleId>AROAFAKE:{session}</AssumedRoleId>"
            f"<Arn>arn:aws:sts::123456789012:assumed-role/tornrouter-bedrock/{session}</Arn></AssumedRoleUser>"
            "</AssumeRoleResult><ResponseMetadata><RequestId>fake-1</RequestId></ResponseMetadata></AssumeRoleResponse>"
        )


def _in_an_hour() -> str:
    import datetime

    return (datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")


class _BedrockHandler(_Handler):
    async def post(self, model: str, method: str) -> None:  # type: ignore[override]
        fake: FakeBedrock = self.upstream  # type: ignore[assignment]
        self.streaming = method in ("invoke-with-response-stream", "converse-stream")
        self.converse = method.startswith("converse")
        refusal = self.signature_problem()
        if refusal is None and self.converse:
            problem = converse_problem(json.loads(self.request.body), model)
            if problem is not None:
                refusal = Reply(status=400, body=bedrock_error(problem), headers={"x-amzn-ErrorType": "ValidationException:"})
        elif refusal is None:
            body = json.loads(self.request.body)
            if body.get("anthropic_version") != "bedrock-2023-05-31" or "model" in body or "stream" in body:
                refusal = Reply(status=400, body=bedrock_error("Malformed input request, please reformat your input and try again."),
                                headers={"x-amzn-ErrorType": "ValidationException:http://internal.amazon.com/coral/com.amazon.bedrock/"})
        if refusal is not None:
            fake.script.appendleft(refusal)
        elif fake.script and fake.script[0].sse is not None and fake.script[0].sse and fake.script[0].sse[0].startswith(b"event:"):
            fake.script[0].sse = frames_of(fake.script[0].sse)  # a scripted Anthropic stream, framed as Bedrock does
        await super().post()

    def signature_problem(self) -> Reply | None:
        fake: FakeBedrock = self.upstream  # type: ignore[assignment]
        if not signed_by(self.request, Credentials(fake.access_key, fake.secret_key, fake.session_token), fake.region, "bedrock"):
            return Reply(status=403, body=bedrock_error(
                "The request signature we calculated does not match the signature you provided. Check your AWS "
                "Secret Access Key and signing method."), headers={"x-amzn-ErrorType": "InvalidSignatureException:"})
        fake.verified += 1
        return None

    def default_reply(self, body: Any) -> Reply:
        if self.converse:
            text = f"{CONVERSE_TEXT} You said: {converse_user_text(body)}"
            return Reply(sse=converse_frames(text)) if self.streaming else Reply(body=converse_response(text))
        if self.streaming:
            return Reply(sse=frames_of(anthropic_sse(stream_text(body, ANTHROPIC_TEXT), model="claude-fake")),
                         headers={"Content-Type": "application/vnd.amazon.eventstream"})
        return Reply()

    async def _stream(self, reply: Reply) -> None:
        self.set_header("Content-Type", "application/vnd.amazon.eventstream")
        await super()._stream(reply)

    def set_header(self, name: str, value: Any) -> None:
        if name == "Content-Type" and value == "text/event-stream":
            value = "application/vnd.amazon.eventstream"
        super().set_header(name, value)


class FakeBedrock(FakeUpstream):
    def __init__(self, access_key: str = ACCESS_KEY, secret_key: str = SECRET_KEY, session_token: str | None = None,
                 region: str = REGION) -> None:
        super().__init__()
        self.access_key, self.secret_key, self.session_token, self.region = access_key, secret_key, session_token, region
        self.verified = 0  # requests whose signature checked out
        self.assumed = 0  # AssumeRole calls answered

    def start(self) -> FakeBedrock:
        app = tornado.web.Application([
            (r"/model/([^/]+)/(invoke|invoke-with-response-stream|converse|converse-stream)", _BedrockHandler, {"upstream": self, "kind": "anthropic"}),
            (r"/", _STSHandler, {"upstream": self}),  # STS, at AWS_ENDPOINT_URL_STS
        ])
        sock, self.port = bind_unused_port()
        self.server = HTTPServer(app)
        self.server.add_socket(sock)
        return self
