"""The options of ``tornrouter conformance``.  ``cli`` imports this module to
build its parser, so it imports nothing of the kit itself: the stream
validators stay out of a serving process."""

from __future__ import annotations

import argparse

ROW_NAMES = (
    "plain_text", "system_prompt", "multi_turn", "stop_sequence", "max_tokens", "tool_call", "parallel_tool_calls",
    "tool_result", "image", "stream_text", "stream_tool_call", "usage", "error_shape",
)
DEFAULT_TIMEOUT_S = 60.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--conf", required=True, help="the YAML config that defines the provider")
    parser.add_argument("--provider", required=True, metavar="NAME", help="the provider to check (a providers: entry)")
    parser.add_argument("--model", help="the model to ask for (default: the first of the provider's models: list)")
    parser.add_argument("--json", metavar="REPORT.json", help="also write the report as JSON to this file")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S, metavar="S",
                        help=f"seconds each row may take before it fails (default {DEFAULT_TIMEOUT_S:g})")
    parser.add_argument("--client", choices=("openai", "anthropic", "responses"), default="openai",
                        help="the client API the requests are translated from (default openai)")
    parser.add_argument("--no-images", action="store_true", help="the model takes no images: skip the image row")
    parser.add_argument("--only", action="append", choices=ROW_NAMES, metavar="ROW",
                        help="run only this row (repeatable); rows: " + ", ".join(ROW_NAMES))
    parser.add_argument("--skip", action="append", choices=ROW_NAMES, metavar="ROW",
                        help="skip this row, a limit of the model you accept (repeatable): it shows as skipped")
