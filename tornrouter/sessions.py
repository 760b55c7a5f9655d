"""Session-sticky routing: a session stays on the target that served it.

A prompt cache lives with one upstream (one account, one region, one server):
a session whose requests a load balancer spreads over several targets pays for
its long prompt again on each, and waits for it to be read again.  A request
names its session by the header ``router.sessions.header`` (Claude Code sends
``X-Claude-Code-Session-Id`` on every request, the default) or, failing that,
by a field of its body, ``router.sessions.body_field`` (``metadata.user_id``,
``prompt_cache_key``).

On a sticky route (the default) with more than one target, a loadbalance or a
fallback list:

- a session's first request goes where the route's strategy sends it, and the
  target that answers is pinned to the session (the log's ``affinity``:
  ``{"pin": "new"}``);
- its later requests try the pinned target first, while its circuit is not
  open (``kept``); the other targets stay its fallbacks;
- when the pinned target is unhealthy or fails, the target that answers
  instead is pinned (``moved``, with ``from`` and the ``reason``), and the
  router's log says so.

Pins live in the state backend (``state:``), in this process or in Redis for
every instance, for ``ttl_s`` after the session's last request.  A pin belongs
to a session, a client key and a set of targets: one session's main model and
its background model each keep their own.  A request that names no session,
or meets a backend that cannot be reached, is routed as if stickiness did not
exist.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from .access.state import BackendUnavailable, StateBackend
from .config.objects import SessionsConfig
from .router import target_name

if TYPE_CHECKING:
    from .access.control import Outage
    from .context import RequestRecord

log = logging.getLogger("tornrouter.sessions")

MAX_NAME = 256  # a longer session name is logged as its digest


@dataclass(slots=True)
class Affinity:
    """A request's session pin: what was pinned when it came (``pinned``), why
    that target was not tried first (``skipped``), and, once a target answered,
    who (``target``) and what became of the pin (``state``)."""

    key: str
    pinned: str | None
    skipped: str | None = None
    target: str | None = None
    state: str | None = None  # new, kept, moved; None until a target answers
    reason: str | None = None  # why it moved

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"pin": self.state, "target": self.target or self.pinned}
        if self.state == "moved":
            out["from"] = self.pinned
            out["reason"] = self.reason
        return out


class Sessions:
    """Names a request's session, puts its pinned target first, pins the target
    that answered.  Holds no state of its own: the pins are the backend's."""

    def __init__(self, config: SessionsConfig, backend: StateBackend, outage: Outage) -> None:
        self.header = config.header
        self.path = tuple(config.body_field.split(".")) if config.body_field else ()
        self.ttl_s = config.ttl_s
        self.backend = backend
        self.outage = outage

    def name(self, headers: Mapping[str, str], body: Callable[[], bytes]) -> str | None:
        """The session a request names, by its header or else its body field
        (``body()`` is read only then); None if none."""
        value: Any = headers.get(self.header) if self.header else None
        if not value and self.path:
            value = _field(body(), self.path)
        if isinstance(value, bool) or not isinstance(value, (str, int)) or value == "":
            return None
        value = str(value)
        return value if len(value) <= MAX_NAME else "sha256:" + hashlib.sha256(value.encode()).hexdigest()

    async def order(self, record: RequestRecord) -> None:
        """Once the request is routed: its session's pinned target first, if it
        is one of the decision's targets and is healthy."""
        decision = record.decision
        if record.session is None or decision is None or not decision.sticky or len(decision.candidates) < 2:
            return
        if not self.outage.worth_trying():
            return
        targets = "\x1f".join(sorted(target_name(c) for c in decision.candidates))
        key = "session:" + hashlib.sha256(f"{record.key_name}\x1f{record.session}\x1f{targets}".encode()).hexdigest()[:32]
        try:
            pinned = await self.backend.pinned(key, self.ttl_s)
        except BackendUnavailable as exc:
            self.outage.failed(exc)
            return
        self.outage.succeeded()
        affinity = record.affinity = Affinity(key, pinned)
        if pinned is None:
            return
        candidate = next((c for c in decision.candidates if target_name(c) == pinned), None)
        if candidate is None:
            affinity.skipped = "no longer a target of the route"
        elif not candidate.provider.healthy():
            affinity.skipped = "circuit open"
        else:
            record.decision = decision.first(candidate)

    async def served(self, record: RequestRecord) -> None:
        """A target answered (for a stream: past its commit point): pin it to the
        session if it is not pinned already."""
        affinity = record.affinity
        if affinity is None or record.target is None:
            return
        target = affinity.target = target_name(record.target)
        if target == affinity.pinned:
            affinity.state = "kept"  # reading the pin renewed it
            return
        try:
            await self.backend.pin(affinity.key, target, self.ttl_s, replace=affinity.pinned is not None)
        except BackendUnavailable as exc:
            self.outage.failed(exc)
            return
        if affinity.pinned is None:
            affinity.state = "new"
            return
        affinity.state = "moved"
        affinity.reason = affinity.skipped or _failure(record, affinity.pinned)
        log.info("%s %s: session %s moved from %s to %s: %s", record.endpoint, record.id, record.session,
                 affinity.pinned, target, affinity.reason)


def _failure(record: RequestRecord, pinned: str) -> str:
    """Why the pinned target did not answer: its last attempt's error."""
    errors = [a["error"] for a in record.attempts if f"{a['provider']}/{a['model']}" == pinned and a["error"]]
    return errors[-1] if errors else "not tried"


def _field(body: bytes, path: tuple[str, ...]) -> Any:
    """The value at ``path`` in a JSON body, or None.  The body was validated
    already; it is read again only for this, and only when the header is absent."""
    try:
        node: Any = orjson.loads(body)
    except ValueError:
        return None
    for name in path:
        if not isinstance(node, dict):
            return None
        node = node.get(name)
    return node
