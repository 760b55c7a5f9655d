"""The health strip's data (``event: health``): each process's providers as
it sees them (breaker, in-flight, queue), merged over the fleet, with the
last minute's requests, error rate and p95 from the aggregate (which already
counts the whole fleet's requests)."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..providers.base import Provider

WORST = {"closed": 0, "half_open": 1, "open": 2}  # a merged breaker is its worst state
STALE_S = 5.0  # a process not heard from for this long no longer adds to the sums
FORGET_S = 60.0  # nor is it listed


def snapshot(providers: Mapping[str, Provider]) -> dict[str, dict[str, Any]]:
    """This process's providers now."""
    return {
        name: {
            "breaker": provider.breaker.state if provider.breaker is not None else "closed",
            "in_flight": provider.limit.in_flight,
            "queued": provider.limit.queued,
        }
        for name, provider in providers.items()
    }


class Health:
    """The latest snapshot of every process in the fleet, by origin."""

    def __init__(self, instance: str, worker: int | None, clock: Callable[[], float] = time.monotonic) -> None:
        self.instance = instance
        self.worker = worker
        self.clock = clock
        self.peers: dict[str, tuple[float, dict[str, Any]]] = {}  # origin -> (heard at, snapshot message)

    def message(self, providers: dict[str, dict[str, Any]]) -> dict[str, Any]:
        """This process's snapshot, as the other processes receive it."""
        return {"instance": self.instance, "worker": self.worker, "providers": providers}

    def heard(self, origin: str, message: dict[str, Any]) -> None:
        self.peers[origin] = (self.clock(), message)

    def report(self, own: dict[str, dict[str, Any]], recent: dict[str, dict[str, Any]]) -> dict[str, Any]:
        now = self.clock()
        for origin in [o for o, (at, _) in self.peers.items() if now - at > FORGET_S]:
            del self.peers[origin]
        instances = [{"instance": self.instance, "worker": self.worker, "seen_s_ago": 0.0}]
        merged = {name: dict(state) for name, state in own.items()}
        for at, message in self.peers.values():
            instances.append({"instance": message.get("instance"), "worker": message.get("worker"),
                              "seen_s_ago": round(now - at, 1)})
            if now - at > STALE_S:
                continue
            for name, state in (message.get("providers") or {}).items():
                mine = merged.setdefault(name, {"breaker": "closed", "in_flight": 0, "queued": 0})
                if WORST.get(state.get("breaker"), 0) > WORST[mine["breaker"]]:
                    mine["breaker"] = state["breaker"]
                mine["in_flight"] += int(state.get("in_flight") or 0)
                mine["queued"] += int(state.get("queued") or 0)
        providers = []
        for name in sorted(merged.keys() | recent.keys()):
            state = merged.get(name, {"breaker": "closed", "in_flight": 0, "queued": 0})
            last_minute = recent.get(name, {"requests": 0, "error_rate": 0.0, "p95_ms": None})
            providers.append({"name": name, **state, **last_minute})
        instances.sort(key=lambda i: (str(i["instance"]), i["worker"] if i["worker"] is not None else -1))
        return {"providers": providers, "instances": instances}
