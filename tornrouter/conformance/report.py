"""What a run found: one ``Outcome`` per row, printed as a table and written
as a JSON report.  Neither holds anything from the provider's config but its
name, kind and model: the key stays out of both."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any, Literal

from .. import __version__
from ..formats.base import short

Status = Literal["pass", "fail", "skip"]
_MARK = {"pass": "pass", "fail": "FAIL", "skip": "skip"}


@dataclass
class Outcome:
    """One row's result.  ``reason`` says why it failed or was skipped, or
    what passed (an excerpt of the answer); ``details`` holds what the JSON
    report adds for a closer look (the answer's text, usage, stream problems);
    ``lossy`` what the translation could not carry to the provider."""

    name: str
    required: bool
    status: Status
    reason: str = ""
    seconds: float = 0.0
    lossy: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def failed_required(self) -> bool:
        return self.status == "fail" and self.required


@dataclass
class Report:
    provider: str
    kind: str
    model: str
    client: str
    timeout_s: float
    ran_at: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))
    outcomes: list[Outcome] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        """No required row failed (optional rows and skips do not count)."""
        return not any(outcome.failed_required for outcome in self.outcomes)

    def counts(self) -> dict[str, int]:
        counts = {"pass": 0, "fail": 0, "skip": 0}
        for outcome in self.outcomes:
            counts[outcome.status] += 1
        return counts

    def to_json(self) -> dict[str, Any]:
        return {
            "provider": self.provider,
            "kind": self.kind,
            "model": self.model,
            "client": self.client,
            "timeout_s": self.timeout_s,
            "ran_at": self.ran_at,
            "tornrouter": __version__,
            "passed": self.passed,
            "counts": self.counts(),
            "rows": [asdict(outcome) for outcome in self.outcomes],
        }

    def table(self) -> str:
        """The rows as an aligned table, a header line above and a summary below."""
        width = max([len(outcome.name) for outcome in self.outcomes] + [3])
        lines = [
            f"provider '{self.provider}' ({self.kind}), model {self.model}, requests translated from the {self.client} API",
            f"{'ROW':<{width}}  RESULT  SECONDS  DETAIL",
        ]
        for outcome in self.outcomes:
            mark = _MARK[outcome.status] + ("" if outcome.required or outcome.status != "fail" else "*")
            lines.append(f"{outcome.name:<{width}}  {mark:<6}  {outcome.seconds:7.2f}  {short(outcome.reason, 110)}")
        counts = self.counts()
        optional = sum(1 for o in self.outcomes if o.status == "fail" and not o.required)
        summary = f"{counts['pass']} passed, {counts['fail']} failed, {counts['skip']} skipped"
        if optional:
            summary += f" (* optional: {optional} of the failures do not fail the run)"
        lines.append(summary + (": conforms" if self.passed else ": does NOT conform"))
        return "\n".join(lines)
