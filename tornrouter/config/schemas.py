"""The marshmallow schemas of the YAML file.  They reject unknown keys
(``unknown = RAISE``): a human typed this file, and a misspelt key must be an
error, not a silently ignored setting."""

from __future__ import annotations

import hashlib
import re
from typing import Any

from marshmallow import INCLUDE, RAISE, Schema, ValidationError, fields, post_load, validate, validates_schema

from .objects import BreakerConfig, KeyConfig, ModelLimit, Price, ServerConfig, StateConfig, Target

PROVIDER_KINDS = ("openai", "anthropic", "echo")


class _Strict(Schema):
    class Meta:
        unknown = RAISE


class ServerSchema(_Strict):
    host = fields.String(load_default="127.0.0.1")
    port = fields.Integer(load_default=8080, validate=validate.Range(0, 65535))
    dashboard = fields.Boolean(load_default=True)
    max_body_bytes = fields.Integer(load_default=20 * 1024 * 1024, validate=validate.Range(min=1024))
    max_clients = fields.Integer(load_default=100, validate=validate.Range(min=1))
    max_response_bytes = fields.Integer(load_default=64 * 1024 * 1024, validate=validate.Range(min=1024))
    max_in_flight = fields.Integer(load_default=None, allow_none=True, validate=validate.Range(min=1))
    drain_s = fields.Float(load_default=30.0, validate=validate.Range(min=0))
    admin_key = fields.String(load_default=None, allow_none=True, validate=validate.Length(min=1, error="must not be empty"))
    # Defaults: ServerConfig's, written there only.
    header_timeout_s = fields.Float(validate=validate.Range(min=0, min_inclusive=False))
    body_timeout_s = fields.Float(validate=validate.Range(min=0, min_inclusive=False))
    idle_timeout_s = fields.Float(validate=validate.Range(min=0, min_inclusive=False))
    max_connections = fields.Integer(validate=validate.Range(min=1))

    @post_load
    def make(self, data: dict[str, Any], **kwargs: Any) -> ServerConfig:
        return ServerConfig(**data)


_POSITIVE = validate.Range(min=0, min_inclusive=False)


class BreakerSchema(_Strict):
    failures = fields.Integer(load_default=5, validate=validate.Range(min=1))
    window_s = fields.Float(load_default=30.0, validate=_POSITIVE)
    cooldown_s = fields.Float(load_default=30.0, validate=_POSITIVE)

    @post_load
    def make(self, data: dict[str, Any], **kwargs: Any) -> BreakerConfig:
        return BreakerConfig(**data)


class LogSchema(_Strict):
    requests = fields.String(load_default=None, allow_none=True)


class ProviderSchema(_Strict):
    kind = fields.String(required=True, validate=validate.OneOf(PROVIDER_KINDS))
    base_url = fields.Url(require_tld=False, schemes={"http", "https"})
    api_key = fields.String(load_default=None, allow_none=True)
    timeout_s = fields.Float(load_default=600.0, validate=validate.Range(min=0, min_inclusive=False))
    connect_timeout_s = fields.Float(load_default=10.0, validate=validate.Range(min=0, min_inclusive=False))
    first_byte_timeout_s = fields.Float(load_default=120.0, validate=validate.Range(min=0, min_inclusive=False))
    idle_timeout_s = fields.Float(load_default=120.0, validate=validate.Range(min=0, min_inclusive=False))
    headers = fields.Dict(keys=fields.String(), values=fields.String(), load_default=dict)
    default_max_tokens = fields.Integer(load_default=4096, validate=validate.Range(min=1))
    anthropic_version = fields.String(load_default="2023-06-01")
    models = fields.List(fields.String(), load_default=list)
    retries = fields.Integer(load_default=0, validate=validate.Range(min=0, max=10))
    retry_backoff_s = fields.Float(load_default=0.5, validate=validate.Range(min=0))
    retry_backoff_max_s = fields.Float(load_default=8.0, validate=validate.Range(min=0))
    retry_after_max_s = fields.Float(load_default=30.0, validate=validate.Range(min=0))
    breaker = fields.Nested(BreakerSchema, load_default=None, allow_none=True)
    max_concurrent = fields.Integer(load_default=None, allow_none=True, validate=validate.Range(min=1))
    max_queue = fields.Integer(load_default=100, validate=validate.Range(min=0))

    @validates_schema
    def needs_url(self, data: dict[str, Any], **kwargs: Any) -> None:
        if data.get("kind") in ("openai", "anthropic") and not data.get("base_url"):
            raise ValidationError("required for this kind", "base_url")


_TARGET_TEXT = re.compile(r"^[^/\s]+(/\S+)?$")
STRATEGIES = ("fallback", "loadbalance")


class TargetsField(fields.Field):
    """``to:``: ``"provider[/model]"``, or a list of those and of
    ``{target: "provider[/model]", weight: N}``."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> tuple[Target, ...]:
        items = value if isinstance(value, list) else [value]
        if not items:
            raise ValidationError("needs at least one target")
        return tuple(self._target(item) for item in items)

    @staticmethod
    def _target(item: Any) -> Target:
        weight: Any = 1.0
        if isinstance(item, dict):
            unknown = set(item) - {"target", "weight"}
            if unknown or "target" not in item:
                raise ValidationError("expected {target: 'provider[/model]', weight: N}")
            item, weight = item["target"], item.get("weight", 1.0)
        if not isinstance(item, str) or not _TARGET_TEXT.match(item):
            raise ValidationError(f"expected 'provider' or 'provider/model', got {item!r}")
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or weight <= 0:
            raise ValidationError(f"weight must be a positive number, got {weight!r}")
        return Target.parse(item, float(weight))


class TargetsSchema(_Strict):
    to = TargetsField(required=True)
    strategy = fields.String(load_default="fallback", validate=validate.OneOf(STRATEGIES))
    continue_on_failure = fields.Boolean(load_default=False)


class RouteSchema(TargetsSchema):
    model = fields.String(load_default="*")
    tags = fields.List(fields.String(), load_default=list)


class DefaultField(fields.Field):
    """``default:``: a target, a list of targets, or ``{to, strategy, continue_on_failure}``."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> dict[str, Any]:
        return TargetsSchema().load(value if isinstance(value, dict) else {"to": value})


class RouterSchema(_Strict):
    default = DefaultField(load_default=None, allow_none=True)
    routes = fields.List(fields.Nested(RouteSchema), load_default=list)


class ClassifierEntrySchema(Schema):
    """``use`` plus the classifier's own settings, which its class validates."""

    class Meta:
        unknown = INCLUDE

    use = fields.String(required=True)


class PluginEntrySchema(_Strict):
    use = fields.String(required=True)
    models = fields.List(fields.String(), load_default=lambda: ["*"])
    settings = fields.Dict(keys=fields.String(), load_default=dict)


# --- access schemas ---

_COUNT = validate.Range(min=1)
_NAME = validate.Regexp(r"^[A-Za-z0-9_.@-]+$", error="use letters, digits and _ . @ - only")


class KeySchema(_Strict):
    name = fields.String(required=True, validate=_NAME)
    key = fields.String(load_default=None, validate=validate.Length(min=1, error="must not be empty"))
    key_sha256 = fields.String(
        load_default=None, validate=validate.Regexp(r"^[0-9a-fA-F]{64}$", error="expected 64 hex digits (sha256sum of the key)")
    )
    models = fields.List(fields.String(), load_default=lambda: ["*"], validate=validate.Length(min=1, error="list at least one model glob ('*' for all)"))
    rpm = fields.Integer(load_default=None, allow_none=True, validate=_COUNT)
    tpm = fields.Integer(load_default=None, allow_none=True, validate=_COUNT)
    concurrency = fields.Integer(load_default=None, allow_none=True, validate=_COUNT)
    budget_usd_per_day = fields.Float(load_default=None, allow_none=True, validate=validate.Range(min=0))
    budget_usd_per_month = fields.Float(load_default=None, allow_none=True, validate=validate.Range(min=0))

    @validates_schema
    def one_secret(self, data: dict[str, Any], **kwargs: Any) -> None:
        if (data.get("key") is None) == (data.get("key_sha256") is None):
            raise ValidationError("give exactly one of key and key_sha256", "key")

    @post_load
    def make(self, data: dict[str, Any], **kwargs: Any) -> KeyConfig:
        key, hexdigest = data.pop("key"), data.pop("key_sha256")
        digest = hashlib.sha256(key.encode()).digest() if key is not None else bytes.fromhex(hexdigest)
        return KeyConfig(sha256=digest, **{**data, "models": tuple(data["models"])})


class ModelLimitSchema(_Strict):
    model = fields.String(required=True)
    rpm = fields.Integer(load_default=None, allow_none=True, validate=_COUNT)
    tpm = fields.Integer(load_default=None, allow_none=True, validate=_COUNT)
    concurrency = fields.Integer(load_default=None, allow_none=True, validate=_COUNT)

    @post_load
    def make(self, data: dict[str, Any], **kwargs: Any) -> ModelLimit:
        return ModelLimit(**data)


class PriceSchema(_Strict):
    input = fields.Float(required=True, validate=validate.Range(min=0))
    output = fields.Float(required=True, validate=validate.Range(min=0))
    cache_read = fields.Float(load_default=None, allow_none=True, validate=validate.Range(min=0))
    cache_write = fields.Float(load_default=None, allow_none=True, validate=validate.Range(min=0))

    @post_load
    def make(self, data: dict[str, Any], **kwargs: Any) -> Price:
        return Price(**data)


STATE_BACKENDS = ("memory", "redis")


class StateSchema(_Strict):
    backend = fields.String(load_default="memory", validate=validate.OneOf(STATE_BACKENDS))
    url = fields.String(load_default=None, allow_none=True)
    on_error = fields.String(load_default="fail_open", validate=validate.OneOf(("fail_open", "fail_closed")))
    timeout_s = fields.Float(load_default=0.5, validate=_POSITIVE)
    prefix = fields.String(load_default="tornrouter:")
    lease_s = fields.Float(load_default=900.0, validate=_POSITIVE)

    @validates_schema
    def url_for_redis(self, data: dict[str, Any], **kwargs: Any) -> None:
        url = data.get("url")
        if data.get("backend") == "redis" and not url:
            raise ValidationError("required for backend redis", "url")
        if data.get("backend") == "memory" and url:
            raise ValidationError("only for backend redis", "url")
        if url and not re.match(r"^(redis|rediss|unix)://", url):
            raise ValidationError("expected a redis://, rediss:// or unix:// URL", "url")

    @post_load
    def make(self, data: dict[str, Any], **kwargs: Any) -> StateConfig:
        return StateConfig(**data)


class ConfigSchema(_Strict):
    server = fields.Nested(ServerSchema, load_default=lambda: ServerConfig())
    log = fields.Nested(LogSchema, load_default=dict)
    providers = fields.Dict(keys=fields.String(), values=fields.Nested(ProviderSchema), required=True)
    router = fields.Nested(RouterSchema, load_default=dict)
    classifiers = fields.List(fields.Nested(ClassifierEntrySchema), load_default=list)
    plugins = fields.List(fields.Nested(PluginEntrySchema), load_default=list)
    keys = fields.List(fields.Nested(KeySchema), load_default=list)
    model_limits = fields.List(fields.Nested(ModelLimitSchema), load_default=list)
    prices = fields.Dict(
        keys=fields.String(validate=validate.Regexp(r"^[^/\s]+/\S+$", error="expected 'provider/model'")),
        values=fields.Nested(PriceSchema),
        load_default=dict,
    )
    state = fields.Nested(StateSchema, load_default=lambda: StateConfig())
