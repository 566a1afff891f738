"""Redaction of personal data in the text fields of enriched events and alerts.

On by default.  Found spans are **masked in place**: every letter and digit
becomes ``*``, punctuation and spaces stay, so the text keeps its length and the
classification's evidence offsets (``text[start:end]``) stay valid::

    "call me on 010-1234-5678 or kim.minsu@naver.com"
    "call me on ***-****-**** or *********@*****.***"

Kinds (``PIPELINE_REDACT_KINDS``, comma-separated, default all three):

* ``email`` — ``local@domain.tld`` (Unicode letters allowed);
* ``phone`` — Korean numbers (010-1234-5678, 01012345678, 02-123-4567,
  +82 10-1234-5678), ``+``-prefixed international numbers, ``(11) 91234-5678``,
  ``555-123-4567``; 8 to 15 digits;
* ``card`` — 13 to 19 digits, optionally grouped by spaces or dashes, that pass
  the Luhn check (other long numbers, e.g. order numbers, are kept).

``PIPELINE_REDACT=0`` switches it off.  Classification always runs on the
original text; only what is written out is redacted.  Ids (``*_id`` keys),
timestamps and enumerations are never touched — only free text: the event's
``text`` / ``reason`` / ``comment``-like fields, every string under
``attributes``, the evidence texts of the classification, and the ``reason``,
``suggested_actions`` and ``details`` strings of alerts.
"""

from __future__ import annotations

import os
import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Mapping

KINDS = ("email", "phone", "card")
MASK = "*"

# Free-text keys of input events (at any depth); everything under "attributes" is free text too.
TEXT_FIELDS = frozenset({"text", "reason", "comment", "comments", "title", "note", "notes", "description",
                         "message", "body", "subject", "summary", "review"})

# Boundaries are ASCII letters/digits only: Korean particles attach directly to a number or an
# address ("010-1234-5678로", "kim@naver.com으로") and must not hide it.
EMAIL = re.compile(r"(?<![\w.%+-])[\w.%+-]+@[\w-]+(?:\.[\w-]+)*\.[A-Za-z]{2,}(?![A-Za-z0-9-])")
# A run of digit groups separated by single spaces or dashes; card numbers are looked for inside.
ANY_DIGIT = re.compile(r"\d")
DIGIT_RUN = re.compile(r"(?<![0-9A-Za-z-])\d+(?:[ -]\d+)*(?![0-9A-Za-z])")
PHONE_BODY = (
    r"(?<![0-9A-Za-z+.-])(?:"
    # Korean: mobile 01x, Seoul 02, regions 0[3-6]x, 070 / 050x; optionally +82 instead of the 0
    r"(?:\+82[ .-]?(?:\(0\)[ .-]?)?|0)(?:1[016789]|2|[3-6][1-5]|70|50\d?)[ .-]?\d{3,4}[ .-]?\d{4}"
    # international with a + country code
    r"|\+[1-9]\d{0,2}(?:[ .-]?\(?\d{1,4}\)?){2,5}"
    # (area) number, e.g. Brazil (11) 91234-5678, US (555) 123-4567
    r"|\(\d{2,4}\)[ .-]?\d{3,5}[ .-]?\d{4}"
    # 555-123-4567, 555.123.4567, 555 123 4567
    r"|\d{3}[ .-]\d{3,4}[ .-]\d{4}"
    r")(?![0-9A-Za-z-])"
)
# Overlapping matches (a zero-width lookahead at every position): "555 010 1234 5678" must not
# hide the Korean number behind an earlier, shorter match.
PHONE = re.compile(r"(?=(" + PHONE_BODY + r"))")
MAX_GROUPS = 40


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = unicodedata.decimal(ch)
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def _digits(s: str) -> str:
    return "".join(ch for ch in s if ch.isdecimal())  # \d also matches non-ASCII digits


def _cards(run: re.Match) -> list[tuple[int, int, str]]:
    """Card numbers inside a run of digit groups: 13-19 digits, Luhn-valid, either one unbroken
    group or consecutive groups of 3-6 digits (4-4-4-4, 4-6-5, ...); the longest one per start."""
    groups = [(m.start() + run.start(), m.end() + run.start(), m.group()) for m in re.finditer(r"\d+", run.group())]
    if len(groups) > MAX_GROUPS or sum(len(g[2]) for g in groups) < 13:
        return []
    out: list[tuple[int, int, str]] = []
    for i, (start, end, digits) in enumerate(groups):
        if 13 <= len(digits) <= 19 and luhn_ok(digits):
            out.append((start, end, "card"))
            continue
        best = None
        total = ""
        for j in range(i, len(groups)):
            g = groups[j][2]
            if not 3 <= len(g) <= 6:
                break
            total += g
            if len(total) > 19:
                break
            if len(total) >= 13 and j > i and luhn_ok(total):
                best = (start, groups[j][1], "card")
        if best is not None:
            out.append(best)
    return out


def _mask(s: str) -> str:
    return "".join(MASK if ch.isalnum() else ch for ch in s)


@dataclass(frozen=True)
class Redactor:
    """Masks e-mail addresses, phone numbers and Luhn-valid card numbers (the enabled ``kinds``)."""

    kinds: frozenset[str] = frozenset(KINDS)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "Redactor":
        env = os.environ if env is None else env
        if (env.get("PIPELINE_REDACT") or "1").strip().lower() in ("0", "false", "no", "off"):
            return cls(frozenset())
        raw = env.get("PIPELINE_REDACT_KINDS") or ",".join(KINDS)
        kinds = frozenset(k.strip().lower() for k in raw.split(",") if k.strip())
        unknown = kinds - set(KINDS)
        if unknown:
            raise ValueError(f"PIPELINE_REDACT_KINDS: unknown kind(s) {sorted(unknown)}; known: {', '.join(KINDS)}")
        return cls(kinds)

    @property
    def enabled(self) -> bool:
        return bool(self.kinds)

    def spans(self, text: str) -> list[tuple[int, int, str]]:
        """Non-overlapping ``(start, end, kind)`` of the personal data in ``text``, in order."""
        if not self.kinds or not isinstance(text, str):
            return []
        found: list[tuple[int, int, str]] = []
        if "email" in self.kinds and "@" in text:
            found += [(m.start(), m.end(), "email") for m in EMAIL.finditer(text)]
        has_digits = ANY_DIGIT.search(text) is not None  # \d = Unicode decimal digits, as str.isdecimal
        if "card" in self.kinds and has_digits:
            for m in DIGIT_RUN.finditer(text):
                found += _cards(m)
        if "phone" in self.kinds and has_digits:
            for m in PHONE.finditer(text):
                if 8 <= len(_digits(m.group(1))) <= 15:
                    found.append((m.start(1), m.end(1), "phone"))
        if not found:
            return []
        found.sort()
        out: list[tuple[int, int, str]] = []
        for span in found:  # overlapping spans are merged (masking the union leaks nothing)
            if out and span[0] < out[-1][1]:
                out[-1] = (out[-1][0], max(out[-1][1], span[1]), out[-1][2])
                continue
            out.append(span)
        return out

    def text(self, text: str) -> str:
        """``text`` with every span masked (same length); the same object when nothing was found."""
        spans = self.spans(text)
        if not spans:
            return text
        parts: list[str] = []
        pos = 0
        for start, end, _ in spans:
            parts.append(text[pos:start])
            parts.append(_mask(text[start:end]))
            pos = end
        parts.append(text[pos:])
        return "".join(parts)

    # -- documents -------------------------------------------------------------------------------
    def _free(self, value: Any) -> Any:
        """Redact every string in ``value`` except under ``*_id`` keys."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, list):
            return [self._free(v) for v in value]
        if isinstance(value, dict):
            return {k: v if _is_id(k) else self._free(v) for k, v in value.items()}
        return value

    def event(self, event: Mapping[str, Any]) -> dict[str, Any]:
        """A copy of an input event with its free-text fields redacted."""
        out: dict[str, Any] = {}
        for k, v in event.items():
            if k == "attributes" or k in TEXT_FIELDS:
                out[k] = self._free(v)
            elif isinstance(v, dict):
                out[k] = self.event(v)
            elif isinstance(v, list):
                out[k] = [self.event(x) if isinstance(x, dict) else x for x in v]
            else:
                out[k] = v
        return out

    def classification(self, classification: Mapping[str, Any] | None, classified_text: str | None) -> Any:
        """Evidence texts masked; offsets index the (masked) classified text, so they stay true."""
        if not classification or not self.enabled:
            return classification
        masked = self.text(classified_text) if isinstance(classified_text, str) else None
        pains = []
        for pp in classification.get("pain_points") or []:
            evidence = []
            for e in pp.get("evidence") or []:
                e = dict(e)
                start, end = e.get("start", -1), e.get("end", -1)
                if (masked is not None and isinstance(start, int) and isinstance(end, int) and 0 <= start <= end
                        and classified_text[start:end] == e.get("text")):
                    e["text"] = masked[start:end]
                elif isinstance(e.get("text"), str):
                    e["text"] = self.text(e["text"])
                evidence.append(e)
            pains.append({**pp, "evidence": evidence})
        return {**classification, "pain_points": pains}

    def alert(self, alert: dict[str, Any]) -> dict[str, Any]:
        """``reason``, ``suggested_actions`` and ``details`` strings redacted (ids and evidence ids kept)."""
        if not self.enabled:
            return alert
        out = dict(alert)
        if isinstance(out.get("reason"), str):
            out["reason"] = self.text(out["reason"])
        if isinstance(out.get("suggested_actions"), list):
            out["suggested_actions"] = [self.text(a) if isinstance(a, str) else a for a in out["suggested_actions"]]
        if isinstance(out.get("details"), dict):
            out["details"] = self._free(out["details"])
        return out


def _is_id(key: Any) -> bool:
    return isinstance(key, str) and (key == "id" or key.endswith("_id") or key.endswith("_ids"))


@lru_cache(maxsize=1)
def default_redactor() -> Redactor:
    """From the process environment (``PIPELINE_REDACT``, ``PIPELINE_REDACT_KINDS``), read once."""
    return Redactor.from_env()


def redact_alert(alert: dict[str, Any], redactor: Redactor | None = None) -> dict[str, Any]:
    return (redactor or default_redactor()).alert(alert)


__all__ = ["KINDS", "Redactor", "default_redactor", "luhn_ok", "redact_alert"]
