"""``tornrouter conformance``: the provider from the config, the battery run
against it one row at a time, the table printed, the report written.

Exit status: 0 when no required row failed, 1 when one did, 2 when the kit
could not start (a bad config, an unknown provider, no model to ask for) or
could not write its report.

Every row has ``--timeout`` seconds.  The provider's own timeouts are lowered
to it, so that a hung upstream ends as the router would end it (a 504 from
curl's timeout, the transfer released); a wait the provider's timeouts do not
cover (a credentials fetch) is cut by the row's own deadline.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import sys
import time

from tornado.curl_httpclient import CurlAsyncHTTPClient

from ..config import Config, ProviderConfig, load_config
from ..errors import ConfigError, UpstreamError
from ..providers import make_provider
from .battery import ROWS, Failed, Row, Skipped, Trace
from .probe import Probe
from .report import Outcome, Report

USAGE_ERROR = 2
DEADLINE_SLACK_S = 5.0  # past --timeout, for the provider's own timeout to fire first, on a busy machine too


class CannotStart(Exception):
    """The kit cannot run: the message names the option or the config entry."""


def main(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.conf)
        provider_config, model = chosen(config, args.provider, args.model)
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"{args.conf}: {problem}", file=sys.stderr)
        return USAGE_ERROR
    except CannotStart as exc:
        print(f"tornrouter conformance: {exc}", file=sys.stderr)
        return USAGE_ERROR
    skips = {name: "--skip: a limit accepted on the command line" for name in args.skip or ()}
    if args.no_images:
        skips["image"] = "--no-images: the model takes no images"
    rows = [row for row in ROWS if not args.only or row.name in args.only]
    report = asyncio.run(run(provider_config, model, args.client, rows, args.timeout, skips))
    print(report.table())
    if args.json:
        try:
            with open(args.json, "w", encoding="utf-8") as f:
                json.dump(report.to_json(), f, indent=2, ensure_ascii=False)
                f.write("\n")
        except OSError as exc:
            print(f"tornrouter conformance: --json: cannot write {args.json}: {exc.strerror}", file=sys.stderr)
            return USAGE_ERROR
    return 0 if report.passed else 1


def chosen(config: Config, name: str, model: str | None) -> tuple[ProviderConfig, str]:
    provider = config.providers.get(name)
    if provider is None:
        raise CannotStart(f"--provider: no provider '{name}' in {config.source} (it has: {', '.join(config.providers)})")
    model = model or (provider.models[0] if provider.models else None)
    if model is None:
        raise CannotStart(f"--model: required, since provider '{name}' lists no models")
    return provider, model


async def run(provider_config: ProviderConfig, model: str, client: str, rows: list[Row], timeout_s: float,
              skips: dict[str, str] | None = None) -> Report:
    """The battery's ``rows`` against the provider, one after the other; ``skips``
    maps a row's name to why it is not run."""
    bounded = dataclasses.replace(
        provider_config,
        timeout_s=min(provider_config.timeout_s, timeout_s),
        connect_timeout_s=min(provider_config.connect_timeout_s, timeout_s),
        first_byte_timeout_s=min(provider_config.first_byte_timeout_s, timeout_s),
        idle_timeout_s=min(provider_config.idle_timeout_s, timeout_s),
    )
    http = CurlAsyncHTTPClient(force_instance=True)
    try:
        provider = make_provider(bounded, http)
        probe = Probe(provider, model, client)
        report = Report(provider.name, provider.kind, model, client, timeout_s)
        for row in rows:
            reason = (skips or {}).get(row.name)
            if reason is not None:
                report.outcomes.append(Outcome(row.name, row.required, "skip", reason))
            else:
                report.outcomes.append(await run_row(row, probe, timeout_s))
        return report
    finally:
        http.close()


async def run_row(row: Row, probe: Probe, timeout_s: float) -> Outcome:
    """One row to its outcome: whatever it raises fails that row, never the run."""
    trace = Trace()
    started = time.monotonic()
    try:
        status, reason = "pass", await asyncio.wait_for(row.check(probe, trace), timeout_s + DEADLINE_SLACK_S)
    except Failed as exc:
        status, reason = "fail", str(exc)
    except Skipped as exc:
        status, reason = "skip", str(exc)
    except UpstreamError as exc:
        status, reason = "fail", f"{exc.status} {exc.code}: {exc.message}"
    except asyncio.TimeoutError:
        status, reason = "fail", f"no answer within {timeout_s:g} s"
    except Exception as exc:  # a decoder or check that broke on what came: that row fails, the others run
        status, reason = "fail", f"{type(exc).__name__}: {exc}"
    seconds = round(time.monotonic() - started, 2)
    return Outcome(row.name, row.required, status, reason, seconds, trace.lossy, trace.details)
