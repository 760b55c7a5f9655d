"""What a replay found, for a reader (``summary``) and for tools (``write_csv``,
``write_json``: one row per request)."""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Iterable

import orjson

from .offline import Outcome


def summary(outcomes: list[Outcome], files: list[str], conf: str, skipped: Counter[str],
            text_readers: list[str] = ()) -> str:
    """``text_readers``: the new config's classifiers that may read the text
    (a ``keyword``, any of the operator's own), whose tags a request rebuilt
    from its shape cannot be trusted for."""
    lines = [f"replayed {len(outcomes)} request(s) from {len(files)} file(s) under {conf} "
             "(offline: routing and access only, nothing sent)"]
    if skipped:
        lines.append("  skipped: " + ", ".join(f"{why} ({n})" for why, n in sorted(skipped.items())))
    shaped = sum(o.from_shape for o in outcomes)
    if shaped:
        lines.append(f"  routed from their shape only (log.bodies none or hash): {shaped}")
        if text_readers:
            lines.append(f"  (their text is placeholder: the tags of {', '.join(text_readers)} may differ for them)")

    moves = Counter((o.before or "-", o.after) for o in outcomes if o.changed)
    lines += ["", f"target changes (old -> new): {sum(moves.values())}"]
    lines += _counted(f"{old} -> {new}" for (old, new), n in moves.items() for _ in range(n))
    lines.append(f"unchanged: {sum(1 for o in outcomes if o.failure is None and not o.changed)}")

    failures = [o for o in outcomes if o.failure is not None]
    lines += ["", f"would now fail: {len(failures)}"]
    lines += _counted(f"{o.failure_kind}: {o.failure}" for o in failures)

    lines += ["", "cost (USD):", _cost_line("before", outcomes, lambda o: (o.cost_before_usd, o.cost_before_source)),
              _cost_line("after", outcomes, lambda o: (o.cost_after_usd, o.cost_after_source))]

    changes: Counter[str] = Counter()
    for o in outcomes:
        if o.failure is None:
            changes.update(f"+{t}" for t in set(o.tags_after) - set(o.tags_before))
            changes.update(f"-{t}" for t in set(o.tags_before) - set(o.tags_after))
    lines += ["", f"tag changes: {sum(changes.values())}"]
    lines += _counted(tag for tag, n in changes.items() for _ in range(n))
    return "\n".join(lines) + "\n"


def _counted(items: Iterable[str]) -> list[str]:
    """One line per distinct item, the most frequent first, with its count."""
    return [f"  {n:6d}  {item}" for item, n in Counter(items).most_common()]


def _cost_line(label: str, outcomes: list[Outcome], pick) -> str:
    total, sources = 0.0, Counter()
    for outcome in outcomes:
        cost, source = pick(outcome)
        if cost is not None:
            total += cost
            sources[source] += 1
        else:
            sources["would fail" if label == "after" and outcome.failure else "without a price"] += 1
    how = ", ".join(f"{n} {source}" for source, n in sources.most_common())
    return f"  {label:6s} {total:12.6f}  ({how})"


def write_json(path: str, outcomes: list[Outcome]) -> None:
    with open(path, "wb") as f:
        f.write(orjson.dumps([o.to_json() for o in outcomes], option=orjson.OPT_INDENT_2))


def write_csv(path: str, outcomes: list[Outcome]) -> None:
    rows = [o.to_json() for o in outcomes]
    names = list(rows[0]) if rows else list(Outcome.__dataclass_fields__) + ["changed"]
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=names)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: " ".join(v) if isinstance(v, list) else v for k, v in row.items()})
