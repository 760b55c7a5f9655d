"""Each logged request routed under another config, offline: the explain core
(``explain.explain``) runs it up to its provider call, with its logged id (so
a loadbalance draw is the one the new config makes for that id), its key (by
name) and its session.  Nothing is sent, stored or counted.

Cost: "before" is the entry's logged ``cost_usd`` where it has one, else the
new config's prices applied to its logged usage on its logged target; "after"
is the new config's prices applied to the logged usage on the new target (the
same tokens, another price), else, for a request that got no answer, the
estimate of its input alone.  Each outcome says which (``cost_*_source``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import TYPE_CHECKING, Any

from ..canonical import Usage
from ..context import RequestRecord
from ..errors import Forbidden, RouterError
from ..explain import explain
from .rebuild import Rebuilt

if TYPE_CHECKING:
    from ..access import ClientKey
    from ..runtime import Runtime

NO_ROUTE, KEY_REFUSED, MODEL_REFUSED, FAILED = "no route", "key refused", "model refused", "refused"
USAGE_FIELDS = frozenset(f.name for f in fields(Usage)) - {"extra"}


@dataclass(slots=True)
class Outcome:
    """One replayed request: where it went, where it would go, what it cost and would cost."""

    id: str
    file: str
    endpoint: str
    requested_model: str
    key: str | None
    from_shape: bool
    status_before: int | None
    before: str | None  # provider/model that answered (or was tried last); "plugin"
    after: str | None = None
    failure: str | None = None  # why the new config would refuse it
    failure_kind: str | None = None  # NO_ROUTE, KEY_REFUSED, MODEL_REFUSED, FAILED
    tags_before: list[str] = field(default_factory=list)
    tags_after: list[str] = field(default_factory=list)
    cost_before_usd: float | None = None
    cost_before_source: str | None = None
    cost_after_usd: float | None = None
    cost_after_source: str | None = None

    @property
    def changed(self) -> bool:
        return self.failure is None and self.after != self.before

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "changed": self.changed}


async def replay_entry(runtime: Runtime, path: str, entry: dict[str, Any], rebuilt: Rebuilt) -> Outcome:
    request = rebuilt.request
    routing = entry.get("routing") or {}
    outcome = Outcome(
        id=str(entry.get("id")), file=path, endpoint=rebuilt.endpoint, requested_model=request.model,
        key=entry.get("key"), from_shape=rebuilt.from_shape, status_before=entry.get("status"),
        before=_logged_target(entry), tags_before=sorted(routing.get("tags") or entry.get("tags") or []),
    )
    usage = _usage(entry.get("usage"))
    outcome.cost_before_usd, outcome.cost_before_source = _cost_before(runtime, entry, outcome.before, usage)
    key, refusal = _key(runtime, outcome.key)
    if refusal is not None:
        outcome.failure, outcome.failure_kind = refusal, KEY_REFUSED
        return outcome
    record = RequestRecord(outcome.id, rebuilt.endpoint, runtime.http)
    record.ctx.request = request
    record.dry_run = True
    record.key_name = outcome.key
    record.session = entry.get("session")
    runtime.cache.read_headers(record, {})
    try:
        out = await explain(runtime, record, key)
    except Forbidden as exc:
        outcome.failure, outcome.failure_kind = exc.message, MODEL_REFUSED
        return outcome
    except RouterError as exc:
        outcome.failure, outcome.failure_kind = f"{exc.status}: {exc.message}", FAILED
        return outcome
    outcome.tags_after = sorted(out["tags"])
    if out["routing"].get("error"):
        outcome.failure, outcome.failure_kind = out["routing"]["error"], NO_ROUTE
        return outcome
    if not out["candidates"]:
        outcome.after = "plugin"
        return outcome
    first = record.decision.candidates[0]
    outcome.after = out["candidates"][0]["target"]
    if usage is not None:
        cost = runtime.access.prices.cost(first.provider.name, first.provider.vendor, first.model, usage)
        outcome.cost_after_usd, outcome.cost_after_source = cost, "new prices, logged usage"
    else:
        outcome.cost_after_usd, outcome.cost_after_source = out["estimate"].get("input_cost_usd"), "estimate, input only"
    return outcome


def _logged_target(entry: dict[str, Any]) -> str | None:
    provider = entry.get("provider")
    if provider is None or provider == "plugin":
        return provider
    return f"{provider}/{entry.get('sent_model')}"


def _usage(logged: Any) -> Usage | None:
    if not isinstance(logged, dict):
        return None
    return Usage(**{k: int(v) for k, v in logged.items() if k in USAGE_FIELDS and isinstance(v, (int, float))})


def _cost_before(runtime: Runtime, entry: dict[str, Any], target: str | None, usage: Usage | None) -> tuple[float | None, str | None]:
    if entry.get("cost_usd") is not None:
        return entry["cost_usd"], "logged"
    if usage is None or target is None or target == "plugin":
        return None, None
    name, _, model = target.partition("/")
    provider = runtime.providers.get(name)
    kind = provider.vendor if provider is not None else name  # a provider the new config dropped: priced by name
    return runtime.access.prices.cost(name, kind, model, usage), "new prices, logged usage"


def _key(runtime: Runtime, name: str | None) -> tuple[ClientKey | None, str | None]:
    """The new config's key of that name, or why the request would get a 401."""
    ring = runtime.access.keys
    if ring.open:
        return None, None
    if name is None:
        return None, "no key: the new config has keys, the request had none"
    for key in ring.keys:
        if key.name == name:
            return key, None
    return None, f"key '{name}' is not in the new config"
