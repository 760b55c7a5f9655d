"""``POST /v1/messages/count_tokens``: how many input tokens a Messages request
would take, from the target that would serve it.

The request is routed as the Messages request itself would be: the Start and
PreRouting plugins, the classifiers, the routes, ``provider,model`` forcing and
a session's pinned target.  Of the decision's targets, the first that is not
known to be failing (its circuit not open) is asked:

- a target whose upstream counts (an Anthropic-kind provider) answers, and its
  answer goes to the client unchanged;
- any other target, no healthy target, a plugin that answered by itself, and an
  upstream without the endpoint (404, 405 or 501: some Anthropic-compatible
  servers lack it) get the router's estimate, ``{"input_tokens": N}``, which
  says so: ``x-tornrouter-estimate: characters/4``, as the Responses API's
  ``input_tokens`` does.

Counting is cheap, and must stay so when a client sends fifty at once: one
call, no retries, no failover, no concurrency slot, no verdict for the circuit
breaker (a count that fails says little of how messages fare), no PostResponse
or End plugins, no bill.  Any other error of the upstream reaches the client
as a Messages error would.
"""

from __future__ import annotations

import time

import orjson

from .classifiers.builtin import CHARS_PER_TOKEN, estimate_input_tokens
from .context import RequestRecord
from .errors import RouterError, UpstreamError
from .router import Candidate

UPSTREAM, ESTIMATED = "upstream", "estimated"
ESTIMATE = f"characters/{CHARS_PER_TOKEN}"  # x-tornrouter-estimate: how the router estimated a count
NO_ENDPOINT = frozenset({404, 405, 501})


async def count_tokens(record: RequestRecord) -> tuple[bytes, str]:
    """The client's answer body and how it was counted (``UPSTREAM`` or
    ``ESTIMATED``), which ``record.token_count`` keeps for the log too.
    Raises the target's ``RouterError``."""
    candidate = _target(record)
    if candidate is not None:
        record.target = candidate
        record.request.model = candidate.model
    if candidate is not None and candidate.provider.counts_tokens:
        started = time.perf_counter()
        try:
            count, body = await candidate.provider.count_tokens(record.request)
        except RouterError as error:
            upstream = isinstance(error, UpstreamError)
            status = error.upstream_status if upstream else error.status
            record.record_attempt(candidate, status, error.message, time.perf_counter() - started,
                                  body=error.body if upstream else None)
            if status not in NO_ENDPOINT:
                raise
        else:
            record.record_attempt(candidate, 200, None, time.perf_counter() - started)
            record.token_count = {"input_tokens": count, "counted": UPSTREAM}
            return body, UPSTREAM
    count = max(1, estimate_input_tokens(record.request))
    record.token_count = {"input_tokens": count, "counted": ESTIMATED}
    return orjson.dumps({"input_tokens": count}), ESTIMATED


def _target(record: RequestRecord) -> Candidate | None:
    """The first candidate not known to be failing; None when a plugin answered
    by itself, or every candidate's circuit is open."""
    if record.decision is None:
        return None
    return next((c for c in record.decision.candidates if c.provider.healthy()), None)
