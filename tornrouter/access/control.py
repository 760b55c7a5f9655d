"""``AccessControl``: who may call, which models, how much, and what it cost.

A request meets it three times (see ``handlers.base.APIHandler``)::

    prepare()   authenticate   no key / a wrong key       -> 401 (before the body is read)
    post()      admit          a model the key may not use -> 403
                               over rpm, tpm, concurrency  -> 429 + Retry-After
                               a budget spent              -> 429 + Retry-After
                               state down, fail_closed     -> 503
                               (count_tokens: only its own count_tokens_rpm)
    on_finish() settle         cost from the price table; the tokens really used
                               replace the estimate; the concurrency slot is given
                               back; spend and usage totals are added: exactly once

An answer from the response cache (``tornrouter/cache``) is admitted and
settled like any: it counts against rpm and, with the tokens it serves,
against tpm; it costs nothing against budgets, and what it would have cost is
recorded as saved (``cache_saved_usd``).

Limits are per key (the ``keys:`` entries) and per model (``model_limits:``,
matched on the requested model; every entry that matches applies).  Tokens per
minute are counted at admission from an estimate of the input
(``estimate_input_tokens``) and corrected at the end to input + output as the
provider reported them.  A budget is checked at admission against what was
spent so far in the UTC day or month, so the request that crosses it is served
and the next one is refused.  ``count_tokens`` requests cost nothing: they are
held to their own limit, ``count_tokens_rpm`` (per key, per model entry), and
to none of the others, and add nothing to usage, spend or the windows.

When the state backend cannot be reached, ``state.on_error`` decides:
``fail_open`` serves without limits, ``fail_closed`` answers 503; requests that
need no limit are served either way.  The outage is logged once when it starts
and once when it ends; meanwhile the backend is retried at most once a second.
"""

from __future__ import annotations

import asyncio
import calendar
import logging
import math
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from fnmatch import translate
from typing import TYPE_CHECKING, Any

from ..canonical import Usage
from ..classifiers.builtin import estimate_input_tokens
from ..config import Config, ModelLimit
from ..errors import BudgetExceeded, Forbidden, InvalidRequest, RateLimited, StateUnavailable, Unauthorized
from .keys import AdminKey, ClientKey, KeyRing
from .prices import PriceTable
from .state import CAP, METRICS, SLOTS, WINDOW, WINDOW_S, BackendUnavailable, Check, MemoryBackend, Settlement, StateBackend, UsageRecord

if TYPE_CHECKING:
    from ..context import RequestRecord

log = logging.getLogger("tornrouter.access")

ANONYMOUS = "anonymous"  # the usage of an open router (no keys:) is recorded under this name
PERIODS = ("day", "month")
TTL_S = {"day": 35 * 86400.0, "month": 400 * 86400.0}  # how long usage totals are kept
RETRY_BACKEND_S = 1.0


def bucket_of(period: str, now: float) -> str:
    return time.strftime("%Y-%m-%d" if period == "day" else "%Y-%m", time.gmtime(now))


def seconds_left(period: str, now: float) -> float:
    """Until the UTC day or month that holds ``now`` ends (when a budget resets)."""
    t = time.gmtime(now)
    if period == "day":
        end = calendar.timegm((t.tm_year, t.tm_mon, t.tm_mday, 0, 0, 0)) + 86400
    else:
        year, month = (t.tm_year + 1, 1) if t.tm_mon == 12 else (t.tm_year, t.tm_mon + 1)
        end = calendar.timegm((year, month, 1, 0, 0, 0))
    return end - now


@dataclass(slots=True)
class Admission:
    """An admitted request's ticket, for ``settle``: what it holds and what to
    correct.  ``counted`` is False when it was let in without the backend."""

    key: str
    member: str
    second: int
    estimate: int
    tpm_counters: tuple[str, ...] = ()
    slot_counters: tuple[str, ...] = ()
    budgets: tuple[str, ...] = ()  # the periods whose spend to count (``day``, ``month``)
    counted: bool = True
    settled: bool = False
    billed: bool = True  # False for count_tokens: nothing goes to usage or spend


class Outage:
    """Is the backend reachable?  One log line when it goes away, one when it is
    back; while away, one attempt per ``retry_s`` (the others do not wait on it)."""

    def __init__(self, where: str, meanwhile: str, retry_s: float = RETRY_BACKEND_S, clock: Callable[[], float] = time.monotonic) -> None:
        self.where = where
        self.meanwhile = meanwhile
        self.retry_s = retry_s
        self.clock = clock
        self.since: float | None = None
        self.retry_at = 0.0

    def worth_trying(self) -> bool:
        return self.since is None or self.clock() >= self.retry_at

    def failed(self, error: Exception) -> None:
        now = self.clock()
        self.retry_at = now + self.retry_s
        if self.since is None:
            self.since = now
            log.error("state backend %s unreachable (%s); until it is back: %s", self.where, error, self.meanwhile)

    def succeeded(self) -> None:
        if self.since is not None:
            log.warning("state backend %s reachable again after %.1f s", self.where, self.clock() - self.since)
            self.since = None


@dataclass(frozen=True, slots=True)
class _Limit:
    """One check with what it means: whose limit (``scope``), which (``name``),
    and the message that refuses a request over it."""

    check: Check
    scope: str
    name: str
    message: str
    never: str | None = None  # the message when the request alone is over the limit

    def refusal(self, retry_after_s: float | None) -> RateLimited:
        if self.check.kind == CAP:
            return BudgetExceeded(self.message, retry_after_s=retry_after_s or self.check.reset_s, limit=self.name, scope=self.scope)
        if retry_after_s is None:
            return RateLimited(self.never or self.message, retry_after_s=WINDOW_S, limit=self.name, scope=self.scope)
        return RateLimited(f"{self.message}; retry in {max(1, math.ceil(retry_after_s))} s",
                           retry_after_s=retry_after_s, limit=self.name, scope=self.scope)


class _ModelRule:
    def __init__(self, limit: ModelLimit) -> None:
        self.glob = limit.model
        self.pattern = re.compile(translate(limit.model))
        self.rpm, self.tpm, self.concurrency = limit.rpm, limit.tpm, limit.concurrency
        self.count_tokens_rpm = limit.count_tokens_rpm


class AccessControl:
    def __init__(
        self,
        config: Config,
        backend: StateBackend,
        *,
        on_refusal: Callable[[RateLimited, str], None] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.keys = KeyRing(config.keys)
        self.admin = AdminKey(config.server.admin_key)
        self.prices = PriceTable(config.prices)
        self.backend = backend
        self.fail_closed = config.state.on_error == "fail_closed"
        self.lease_s = config.state.lease_s
        self.model_rules = [_ModelRule(m) for m in config.model_limits]
        self.on_refusal = on_refusal or (lambda error, key: None)
        self.clock = clock
        self.outage = Outage(
            getattr(backend, "where", backend.__class__.__name__),
            "refusing requests that have limits with 503 (on_error: fail_closed)" if self.fail_closed
            else "serving without limits, usage not recorded (on_error: fail_open)",
        )
        self._pending: set[asyncio.Future[None]] = set()
        self._announce(config)

    def _announce(self, config: Config) -> None:
        """Say at start what is (and is not) protected."""
        if self.keys.open:
            log.warning("no keys: configured: the API is open to anyone who can reach it")
        else:
            log.info("%d client keys configured; state backend: %s", len(self.keys.keys), config.state.backend)
        if self.admin.open and config.server.dashboard:
            log.warning("no server.admin_key: the dashboard, /metrics and /v1/usage are open")

    # --- who -----------------------------------------------------------------

    def authenticate(self, headers: Mapping[str, str]) -> ClientKey | None:
        """The caller's key; None on an open router.  ``Unauthorized`` otherwise."""
        if self.keys.open:
            return None
        key = self.keys.identify(headers)
        if key is not None:
            return key
        if "x-api-key" in headers or "Authorization" in headers:
            raise Unauthorized("invalid API key")
        raise Unauthorized("missing API key: send it as 'Authorization: Bearer <key>' or 'x-api-key: <key>'")

    # --- admission -------------------------------------------------------------

    async def admit(self, record: RequestRecord, key: ClientKey | None, *, counting: bool = False) -> Admission:
        """Let the parsed request in, or raise ``Forbidden``, ``RateLimited`` or
        ``StateUnavailable``.  The ticket goes to ``settle`` when the request ends.
        ``counting``: a ``count_tokens`` request, held to its own limits only."""
        model = record.request.model
        record.requested_model = model  # as the pipeline will set it: the log names it even when refused here
        if key is not None and not key.may_use(model):
            raise Forbidden(f"key '{key.name}' may not use model '{model}'", param="model")
        now = self.clock()
        estimate = 0 if counting else estimate_input_tokens(record.request)
        checks, limits = self._counting_checks(key, model) if counting else self._checks(key, model, estimate, now)
        admission = Admission(key.name if key else ANONYMOUS, record.id, int(now), estimate, billed=not counting)
        if not checks:
            return admission
        if not self.outage.worth_trying():
            return self._unchecked(admission)
        try:
            refusal = await self.backend.admit(checks, record.id, now, self.lease_s)
        except BackendUnavailable as exc:
            self.outage.failed(exc)
            return self._unchecked(admission)
        self.outage.succeeded()
        if refusal is not None:
            error = limits[refusal.index].refusal(refusal.retry_after_s)
            self.on_refusal(error, admission.key)
            raise error
        admission.tpm_counters = tuple(limit.check.counter for limit in limits if limit.name == "tpm")
        admission.slot_counters = tuple(limit.check.counter for limit in limits if limit.check.kind == SLOTS)
        admission.budgets = tuple(p for p in PERIODS if key is not None and _budget(key, p) is not None)
        return admission

    async def preview(self, record: RequestRecord, key: ClientKey | None) -> dict[str, Any]:
        """What ``admit`` would decide, counting nothing (a dry run): ``Forbidden``
        for a model the key may not use, as ``admit`` raises it; else each limit
        that applies with what is used and what is left (a budget: the USD left
        in its day or month), and whether it would refuse the request now."""
        model = record.request.model
        record.requested_model = model
        if key is not None and not key.may_use(model):
            raise Forbidden(f"key '{key.name}' may not use model '{model}'", param="model")
        now = self.clock()
        estimate = estimate_input_tokens(record.request)
        checks, limits = self._checks(key, model, estimate, now)
        out: dict[str, Any] = {"key": key.name if key else None, "estimated_input_tokens": estimate, "limits": []}
        try:
            used = await self.backend.used(checks, now) if checks else []
        except BackendUnavailable as exc:
            self.outage.failed(exc)
            used = [None] * len(checks)
            out["state"] = "unreachable: " + ("would refuse (on_error: fail_closed)" if self.fail_closed
                                              else "would serve without limits (on_error: fail_open)")
        refused_by = "the state backend (unreachable, on_error: fail_closed)" if "state" in out and self.fail_closed else None
        for limit, held in zip(limits, used):
            check = limit.check
            row: dict[str, Any] = {"scope": limit.scope, "limit": limit.name, "max": check.limit, "used": held}
            if held is not None:
                row["remaining"] = round(max(0.0, check.limit - held), 8)
                adds = 0 if check.kind == CAP else check.amount
                row["would_refuse"] = held >= check.limit if check.kind == CAP else held + adds > check.limit
                if row["would_refuse"] and refused_by is None:
                    refused_by = f"{limit.scope} {limit.name}"
            out["limits"].append(row)
        out["admitted"] = refused_by is None
        if refused_by is not None:
            out["refused_by"] = refused_by
        return out

    def _unchecked(self, admission: Admission) -> Admission:
        if self.fail_closed:
            raise StateUnavailable("rate limits cannot be checked right now (state backend unreachable); retry shortly")
        admission.counted = False
        return admission

    def _checks(self, key: ClientKey | None, model: str, estimate: int, now: float) -> tuple[list[Check], list[_Limit]]:
        """The request's checks, and beside each the limit it enforces."""
        limits: list[_Limit] = []
        scopes: list[tuple[str, str, str, Any]] = []
        if key is not None:
            scopes.append(("key", f"key:{key.name}", f"key '{key.name}'", key.config))
        for rule in self.model_rules:
            if rule.pattern.match(model):
                scopes.append(("model", f"model:{rule.glob}", f"models '{rule.glob}'", rule))
        for scope, prefix, who, spec in scopes:
            if spec.rpm is not None:
                limits.append(_Limit(Check(WINDOW, f"{prefix}:rpm", spec.rpm), scope, "rpm",
                                     f"{who} is over its limit of {spec.rpm} requests per minute"))
            if spec.tpm is not None:
                limits.append(_Limit(Check(WINDOW, f"{prefix}:tpm", spec.tpm, amount=estimate), scope, "tpm",
                                     f"{who} is over its limit of {spec.tpm} tokens per minute (this request: ~{estimate} input tokens)",
                                     never=f"this request's ~{estimate} input tokens exceed the limit of {who}: {spec.tpm} tokens per minute"))
            if spec.concurrency is not None:
                limits.append(_Limit(Check(SLOTS, f"{prefix}:concurrency", spec.concurrency), scope, "concurrency",
                                     f"{who} already has {spec.concurrency} requests in flight, its limit"))
        for period in PERIODS if key is not None else ():
            budget = _budget(key, period)
            if budget is not None:
                check = Check(CAP, _spend_counter(key.name, period, now), budget, reset_s=seconds_left(period, now))
                limits.append(_Limit(check, "key", f"budget_{period}",
                                     f"key '{key.name}' has spent its {'daily' if period == 'day' else 'monthly'} budget of "
                                     f"${budget:g}; it is renewed at the start of the next {period} (UTC)"))
        return [limit.check for limit in limits], limits

    def _counting_checks(self, key: ClientKey | None, model: str) -> tuple[list[Check], list[_Limit]]:
        """A ``count_tokens`` request's checks: the ``count_tokens_rpm`` of its key
        and of the model entries that match, on windows of their own."""
        limits: list[_Limit] = []
        scopes: list[tuple[str, str, str, int | None]] = []
        if key is not None:
            scopes.append(("key", f"key:{key.name}", f"key '{key.name}'", key.config.count_tokens_rpm))
        scopes += [("model", f"model:{rule.glob}", f"models '{rule.glob}'", rule.count_tokens_rpm)
                   for rule in self.model_rules if rule.pattern.match(model)]
        for scope, prefix, who, rpm in scopes:
            if rpm is not None:
                limits.append(_Limit(Check(WINDOW, f"{prefix}:count_tokens_rpm", rpm), scope, "count_tokens_rpm",
                                     f"{who} is over its limit of {rpm} count_tokens requests per minute"))
        return [limit.check for limit in limits], limits

    # --- the end of a request --------------------------------------------------------

    def settle(self, record: RequestRecord, admission: Admission | None) -> None:
        """Price the answer (``record.cost_usd``, for the log), and, once per
        admitted request, hand its usage, spend and slot back to the backend.
        Synchronous for ``on_finish``: a backend that cannot settle at once
        (``StateBackend.settle_now``) is written in a task."""
        target = record.target
        usage = record.usage or Usage()
        cost = None
        if target is not None and record.usage is not None:
            cost = self.prices.cost(target.provider.name, target.provider.vendor, target.model, usage)
        hit = record.cache is not None and record.cache.outcome == "hit"
        if hit and cost is not None:  # served from the cache: nothing spent upstream
            record.cache.saved_usd, cost = round(cost, 8), 0.0
        record.cost_usd = None if cost is None else round(cost, 8)
        if admission is None or admission.settled or not admission.billed:
            return
        admission.settled = True
        now = self.clock()
        # Totals are kept per model as sent upstream; a plugin's answer, or none, under the requested name.
        model = f"{record.served_by or '-'}/{target.model if target else record.requested_model}"
        counts: dict[str, float] = {
            "requests": 1,
            "input_tokens": usage.input_tokens,
            "output_tokens": usage.output_tokens,
            "cache_read_tokens": usage.cache_read_tokens,
            "cache_creation_tokens": usage.cache_creation_tokens,
            "cost_usd": float(cost or 0.0),
        }
        if hit:
            counts["cache_hits"] = 1
            counts["cache_saved_usd"] = float(record.cache.saved_usd or 0.0)
        settlement = Settlement(
            member=admission.member,
            usage=tuple(UsageRecord(p, bucket_of(p, now), admission.key, model, counts, TTL_S[p]) for p in PERIODS),
        )
        if admission.counted:
            delta = usage.prompt_tokens + usage.output_tokens - admission.estimate
            if delta and now - admission.second < WINDOW_S:
                settlement.corrections = tuple((c, admission.second, delta) for c in admission.tpm_counters)
            settlement.slots = admission.slot_counters
        if cost:
            settlement.spend = tuple((_spend_counter(admission.key, p, now), cost, seconds_left(p, now) + 86400) for p in admission.budgets)
        if not self.outage.worth_trying():
            return  # lost with the outage: its slot expires with its lease
        if self.backend.settle_now(settlement, now):
            return
        task = asyncio.ensure_future(self._write(settlement, now))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _write(self, settlement: Settlement, now: float) -> None:
        try:
            await self.backend.settle(settlement, now)
        except BackendUnavailable as exc:
            self.outage.failed(exc)
        else:
            self.outage.succeeded()

    # --- reporting -------------------------------------------------------------------

    async def usage(self, period: str, key: str | None, bucket: str | None = None) -> dict[str, Any]:
        """``/v1/usage``: totals per key and model for one day or month (the
        current one unless ``bucket`` names another: ``2025-06-01``, ``2025-06``)."""
        if period not in PERIODS:
            raise InvalidRequest("period", f"expected one of {', '.join(PERIODS)}")
        bucket = bucket or bucket_of(period, self.clock())
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}" if period == "day" else r"\d{4}-\d{2}", bucket):
            raise InvalidRequest("date", f"expected {'YYYY-MM-DD' if period == 'day' else 'YYYY-MM'} for period {period}")
        try:
            totals = await self.backend.usage(period, bucket, key)
        except BackendUnavailable as exc:
            self.outage.failed(exc)
            raise StateUnavailable("usage totals cannot be read right now (state backend unreachable)") from exc
        configured = {k.name: k for k in self.keys.keys}
        keys: dict[str, Any] = {}
        for name, models in sorted(totals.items()):
            total = dict.fromkeys(METRICS, 0)
            for counts in models.values():
                for metric, value in counts.items():
                    total[metric] = total.get(metric, 0) + value
            total["cost_usd"] = round(total["cost_usd"], 8)
            total["cache_saved_usd"] = round(total["cache_saved_usd"], 8)
            entry: dict[str, Any] = {"models": models, "total": total}
            budget = _budget(configured[name], period) if name in configured else None
            if budget is not None:
                entry["budget_usd"] = budget
            keys[name] = entry
        return {"object": "usage", "period": period, "date": bucket, "keys": keys}

    async def drain(self, timeout: float = 2.0) -> None:
        """Wait (at most ``timeout`` seconds) for the settles being written."""
        if self._pending:
            await asyncio.wait(list(self._pending), timeout=timeout)

    async def aclose(self) -> None:
        """At a stop: the settles in flight written, then the backend closed."""
        await self.drain()
        await self.backend.aclose()


def _budget(key: ClientKey, period: str) -> float | None:
    return key.config.budget_usd_per_day if period == "day" else key.config.budget_usd_per_month


def _spend_counter(key: str, period: str, now: float) -> str:
    return f"key:{key}:spend:{period}:{bucket_of(period, now)}"


def make_backend(config: Config) -> StateBackend:
    if config.state.backend == "redis":
        from .redis_state import RedisBackend  # only a Redis setup needs the library

        return RedisBackend(config.state.url or "", prefix=config.state.prefix, timeout_s=config.state.timeout_s)
    return MemoryBackend()
