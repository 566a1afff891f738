"""``python -m pipeline self-train --status``: the models published now, and the gate's figures."""

from __future__ import annotations

from typing import Any, Iterable

import orjson

from ..classify.selftrain import PAIN_KEY_PREFIX


def status_rows(records: Iterable[tuple[bytes | None, bytes | None]]) -> list[dict[str, Any]]:
    """One row per language and kind from the models topic's records (the newest per key wins;
    a withdrawn or unreadable record shows as such)."""
    latest: dict[str, bytes | None] = {}
    for key, value in records:
        if key:
            latest[key.decode("utf-8", "replace")] = value
    rows = []
    for key, value in sorted(latest.items()):
        kind = "pain_points" if key.startswith(PAIN_KEY_PREFIX) else "sentiment"
        row: dict[str, Any] = {"language": key.removeprefix(PAIN_KEY_PREFIX), "kind": kind, "version": "-",
                               "samples": None, "gate": "withdrawn" if value is None else "unreadable"}
        try:
            meta = orjson.loads(value).get("meta") if value is not None else None
        except (orjson.JSONDecodeError, AttributeError):
            meta = None
        if isinstance(meta, dict):
            row.update(version=meta.get("version", "-"), samples=meta.get("examples"), gate=_gate_text(kind, meta))
        rows.append(row)
    return rows


def _gate_text(kind: str, meta: dict[str, Any]) -> str:
    gate = meta.get("gate")
    if kind == "sentiment" and isinstance(gate, dict):
        return (f"balanced accuracy {gate.get('model_balanced_accuracy')} (model) against "
                f"{gate.get('lexicon_balanced_accuracy')} (lexicon), 5-fold")
    if kind == "pain_points" and isinstance(gate, list):
        kept = [g for g in gate if isinstance(g, dict) and g.get("accepted")]
        return "; ".join(f"{g.get('category')}: F1 {g.get('model_f1', 0):.2f} against rules {g.get('rules_f1', 0):.2f}"
                         for g in kept) or "no category kept"
    return "-"


def render(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "no self-trained model published yet (the lexicon and the rules apply)"
    lines = [f"{'language':<9} {'kind':<12} {'version':<16} {'samples':>8}  gate"]
    for r in rows:
        samples = "-" if r["samples"] is None else str(r["samples"])
        lines.append(f"{r['language']:<9} {r['kind']:<12} {r['version']:<16} {samples:>8}  {r['gate']}")
    return "\n".join(lines)
