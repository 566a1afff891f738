"""Redaction of personal data in the text fields of enriched events and alerts.

On by default.  Found spans are **masked in place**: every letter and digit
becomes ``*``, punctuation and spaces stay, so the text keeps its length and the
classification's evidence offsets (``text[start:end]``) stay valid::

    "call me on 010-1234-5678 or kim.minsu@naver.com"
    "call me on ***-****-**** or *********@*****.***"

Kinds (``PIPELINE_REDACT_KINDS``, comma-separated, default all of them):

* ``email`` — ``local@domain.tld`` (Unicode letters allowed);
* ``phone`` — Korean numbers (010-1234-5678, 01012345678, 02-123-4567,
  +82 10-1234-5678), ``+``-prefixed international numbers, ``(11) 91234-5678``,
  ``555-123-4567``; 8 to 15 digits;
* ``card`` — 13 to 19 digits, unbroken or grouped (groups of 3-6 digits) by
  spaces, dots or dashes, that pass the Luhn check (other long numbers, e.g.
  order numbers, are kept);
* ``rrn`` — Korean resident registration numbers, ``YYMMDD-NNNNNNN`` (dash,
  space or nothing): the date must exist for the century given by the 7th digit,
  which must be 1-8; the old checksum is not required (not issued since 2020);
* ``cpf`` — Brazilian CPF, ``123.456.789-09`` or 11 digits, both mod-11 check
  digits right and not all digits equal;
* ``cnpj`` — Brazilian CNPJ, ``12.345.678/0001-95`` or 14 digits (the
  alphanumeric CNPJ of 2026, ``12.ABC.345/01DE-35``, when written with ``/``),
  both check digits right; 14 digits that read as a ``YYYYMMDDhhmmss``
  timestamp are kept;
* ``iban`` — a known IBAN country code, 2 check digits and the country's length,
  unbroken or in groups of 4 separated by spaces, mod-97 check.

``PIPELINE_REDACT=0`` switches it off.  Classification always runs on the
original text; only what is written out is redacted.  Ids (``*_id`` keys),
timestamps and enumerations are never touched — only free text: the event's
``text`` / ``reason`` / ``comment``-like fields, every string under
``attributes`` (nested dicts and lists included; a whole number there that is
personal data, e.g. a CPF written as a JSON number, becomes its masked digits as
a string), the evidence texts of the classification, and the ``reason``,
``suggested_actions`` and ``details`` strings of alerts.  Id keys (``id``,
``*_id``, ``*_ids``, ``*Id``, ``*Ids``) keep their whole value, so outputs stay
joinable.
"""

from __future__ import annotations

import calendar
import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Mapping

KINDS = ("email", "phone", "card", "rrn", "cpf", "cnpj", "iban")
# When spans of different kinds overlap, the merged span is reported as the most specific kind.
_PRIORITY = {k: i for i, k in enumerate(("email", "iban", "rrn", "cnpj", "phone", "cpf", "card"))}
MASK = "*"

# Free-text keys of input events (at any depth); everything under "attributes" is free text too.
TEXT_FIELDS = frozenset({"text", "reason", "comment", "comments", "title", "note", "notes", "description",
                         "message", "body", "subject", "summary", "review"})

# The keys whose values are free text at any depth (``attributes``: numbers too).
_FREE_KEYS = TEXT_FIELDS | {"attributes"}
_SCALARS = frozenset({str, int, float, bool, type(None)})  # the JSON scalars (exact types)
_NON_TEXT = _SCALARS - {str}

# Boundaries are ASCII letters/digits only: Korean particles attach directly to a number or an
# address ("010-1234-5678로", "kim@naver.com으로") and must not hide it.
EMAIL = re.compile(r"(?<![\w.%+-])[\w.%+-]+@[\w-]+(?:\.[\w-]+)*\.[A-Za-z]{2,}(?![A-Za-z0-9-])")
# A run of digit groups separated by single spaces, dots or dashes; card numbers are looked for
# inside.  Not the tail of a decimal number ("1.4111...") nor of a dashed code ("sku-12345-...").
ANY_DIGIT = re.compile(r"\d")
DIGIT_RUN = re.compile(r"(?<![0-9A-Za-z-])(?<!\d\.)\d+(?:[ .-]\d+)*(?![0-9A-Za-z])")
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
_EPOCH_MS = (946_684_800_000, 4_102_444_800_000)  # 2000-01-01 .. 2100-01-01 in milliseconds

# Korean RRN / Brazilian CPF and CNPJ: overlapping matches (a zero-width lookahead at every
# position) so that a candidate failing its check cannot hide a valid one next to it.  Not the
# continuation of a code, amount or path ("ORD-…", "1.…", "/orders/…"), and not followed by more
# digits ("…-09.5", "…-09-1").
_ID_BEFORE = r"(?<![0-9A-Za-z.,/-])"
_ID_AFTER = r"(?![0-9A-Za-z]|[.,/-]?\d)"
RRN = re.compile(r"(?=" + _ID_BEFORE + r"((\d{6})[ -]?(\d{7}))" + _ID_AFTER + r")")
CPF = re.compile(r"(?=" + _ID_BEFORE + r"(\d{3}([. ]?)\d{3}\2\d{3}[-. ]?\d{2})" + _ID_AFTER + r")")
CNPJ = re.compile(r"(?=" + _ID_BEFORE + r"([\dA-Z]{2}\.?[\dA-Z]{3}\.?[\dA-Z]{3}(/?)[\dA-Z]{4}-?\d{2})"
                  + _ID_AFTER + r")")
# Necessary conditions, each one plain search, so most texts (dates, ids, amounts) skip the scans
# above, which try every position: every card, RRN, CPF and slash-less CNPJ has 11+ digits chained by
# single [ .-]; every phone without "+" ends in 3 digits, an optional [ .-] and 4 digits not followed
# by a digit; every CNPJ with "/" has 4 letters/digits and 2 digits after it; every IBAN starts with
# 2 letters and 2 digits.
CHAINED_DIGITS = re.compile(r"\d[ .-]?\d[ .-]?\d[ .-]?\d[ .-]?\d[ .-]?\d[ .-]?\d[ .-]?\d[ .-]?\d[ .-]?\d[ .-]?\d")
PHONE_TAIL = re.compile(r"\d\d\d[ .-]?\d{4}(?![0-9])")
CNPJ_SLASH = re.compile(r"/[\dA-Z]{4}-?\d{2}")
IBAN_HINT = re.compile(r"[0-9](?<=[A-Za-z]{2}[0-9])[0-9]")  # a leading digit: the search skips to digits
# The same conditions on an ASCII text, cheaper: its shape (digit "0", letter "a", [ .-] ".", other "x")
# searched with ``in`` (the phone's condition without "not followed by a digit": weaker, still necessary).
_SHAPES = str.maketrans({chr(c): "0" if chr(c).isdigit() else "a" if chr(c).isalpha() else "." if chr(c) in " .-"
                         else "x" for c in range(128)})
# IBAN: country code + 2 check digits; the rest (the country's length) is read by _iban_at.
IBAN_START = re.compile(r"(?<![0-9A-Za-z])[A-Za-z]{2}[0-9]{2}(?=[ ]?[0-9A-Za-z])")
# IBAN lengths by country (SWIFT IBAN registry); other country codes are not IBANs.
IBAN_LENGTHS = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22, "BI": 27,
    "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DJ": 27, "DK": 18, "DO": 28,
    "EE": 20, "EG": 29, "ES": 24, "FI": 18, "FK": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23,
    "GL": 18, "GR": 27, "GT": 28, "HN": 28, "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26,
    "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20, "LV": 21,
    "LY": 25, "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MN": 20, "MR": 27, "MT": 31, "MU": 30, "NI": 28,
    "NL": 18, "NO": 15, "OM": 23, "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22,
    "RU": 33, "SA": 24, "SC": 31, "SD": 18, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "SO": 23, "ST": 25,
    "SV": 28, "TL": 23, "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20, "YE": 30,
}
_ASCII_ALNUM = frozenset("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")


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


def _values(s: str) -> list[int]:
    return [unicodedata.decimal(ch) for ch in s if ch.isdecimal()]


def rrn_ok(digits: str) -> bool:
    """13 digits ``YYMMDDGNNNNNN``: G is 1-8 (1, 2, 5, 6: born 1900-1999; 3, 4, 7, 8: 2000-2099)
    and the birth date exists.  The check digit is not verified (not used since October 2020)."""
    v = _values(digits)
    if len(v) != 13 or not 1 <= v[6] <= 8:
        return False
    year = (1900 if v[6] in (1, 2, 5, 6) else 2000) + v[0] * 10 + v[1]
    month, day = v[2] * 10 + v[3], v[4] * 10 + v[5]
    return 1 <= month <= 12 and 1 <= day <= calendar.monthrange(year, month)[1]


def cpf_ok(digits: str) -> bool:
    """11 digits, both mod-11 check digits right, not all the same digit (111.111.111-11)."""
    v = _values(digits)
    if len(v) != 11 or len(set(v)) == 1:
        return False
    for n in (9, 10):
        if sum(d * w for d, w in zip(v[:n], range(n + 1, 1, -1))) * 10 % 11 % 10 != v[n]:
            return False
    return True


def cnpj_ok(value: str) -> bool:
    """14 characters (digits, or digits and capital letters in the first 12 — the alphanumeric
    CNPJ), both check digits right (weights 5..2,9..2 and 6..2,9..2; a letter counts ord - 48)."""
    v = [unicodedata.decimal(ch) if ch.isdecimal() else ord(ch) - 48 for ch in value if ch.isalnum()]
    if len(v) != 14 or len(set(v)) == 1:
        return False
    weights = (6, 5, 4, 3, 2, 9, 8, 7, 6, 5, 4, 3, 2)
    for n in (12, 13):
        r = sum(d * w for d, w in zip(v[:n], weights[13 - n:])) % 11
        if (0 if r < 2 else 11 - r) != v[n]:
            return False
    return True


def iban_ok(iban: str) -> bool:
    """Known country, that country's length, mod-97 = 1 (ISO 13616); spaces are ignored."""
    s = iban.replace(" ", "").upper()
    if IBAN_LENGTHS.get(s[:2]) != len(s) or not s[2:4].isdigit() or not all(ch in _ASCII_ALNUM for ch in s):
        return False
    return int("".join(str(int(ch, 36)) for ch in s[4:] + s[:4])) % 97 == 1


def _iban_at(text: str, m: re.Match) -> tuple[int, int] | None:
    """The IBAN starting at ``m``: the country's length in letters/digits, unbroken or with single
    spaces between groups of 4, ending on a word boundary."""
    length = IBAN_LENGTHS.get(m.group()[:2].upper())
    if length is None:
        return None
    i, count, n = m.end(), 4, len(text)
    while count < length:
        if i < n and text[i] == " " and count % 4 == 0 and i + 1 < n and text[i + 1] in _ASCII_ALNUM:
            i += 1
        if i >= n or text[i] not in _ASCII_ALNUM:
            return None
        i += 1
        count += 1
    if i < n and text[i] in _ASCII_ALNUM:
        return None
    return (m.start(), i) if iban_ok(text[m.start():i]) else None


def _looks_like_timestamp(digits: str) -> bool:
    """``YYYYMMDDhhmmss`` of 1900-2099 (kept, not taken for a CNPJ)."""
    v = _values(digits)
    if len(v) != 14:
        return False
    year = int("".join(map(str, v[:4])))
    month, day, hh, mm, ss = (v[i] * 10 + v[i + 1] for i in range(4, 14, 2))
    return (1900 <= year <= 2099 and 1 <= month <= 12 and 1 <= day <= calendar.monthrange(year, month)[1]
            and hh < 24 and mm < 60 and ss < 60)


def _number_hints(text: str) -> tuple[bool, bool, bool]:
    """Whether ``text`` may hold (chained digits, a phone's tail, an IBAN's start): :data:`CHAINED_DIGITS`,
    :data:`PHONE_TAIL` and :data:`IBAN_HINT`, or for an ASCII text the same read from its shape."""
    if text.isascii():
        shape = text.translate(_SHAPES)
        # single separators dropped, longer runs of them break a chain
        chained = "00000000000" in shape.replace("..", "x").replace(".", "")
        return chained, "0000000" in shape or "000.0000" in shape, "aa00" in shape
    return (CHAINED_DIGITS.search(text) is not None, PHONE_TAIL.search(text) is not None,
            IBAN_HINT.search(text) is not None)


def _ids(text: str, kinds: frozenset[str], chained: bool = True, iban: bool = True) -> list[tuple[int, int, str]]:
    """RRN, CPF, CNPJ and IBAN spans (the enabled ones).  ``chained``, ``iban``: what :func:`_number_hints`
    says (without chained digits there is no RRN, CPF nor slash-less CNPJ; without its start no IBAN)."""
    out: list[tuple[int, int, str]] = []
    if "rrn" in kinds and chained:
        out += [(m.start(1), m.end(1), "rrn") for m in RRN.finditer(text) if rrn_ok(m.group(2) + m.group(3))]
    if "cpf" in kinds and chained:
        out += [(m.start(1), m.end(1), "cpf") for m in CPF.finditer(text) if cpf_ok(m.group(1))]
    if "cnpj" in kinds and (chained or CNPJ_SLASH.search(text) is not None):
        for m in CNPJ.finditer(text):
            value = m.group(1)
            letters = any(not ch.isdecimal() for ch in value if ch.isalnum())
            if letters and not m.group(2):  # alphanumeric only when written with its "/"
                continue
            if not letters and value.isdecimal() and _looks_like_timestamp(value):
                continue
            if cnpj_ok(value):
                out.append((m.start(1), m.end(1), "cnpj"))
    if "iban" in kinds and iban:
        for m in IBAN_START.finditer(text):
            span = _iban_at(text, m)
            if span is not None:
                out.append((*span, "iban"))
    return out


def _digits(s: str) -> str:
    return "".join(ch for ch in s if ch.isdecimal())  # \d also matches non-ASCII digits


def _cards(run: re.Match) -> list[tuple[int, int, str]]:
    """Card numbers inside a run of digit groups: 13-19 digits, Luhn-valid, either one unbroken
    group or consecutive groups of 3-6 digits (4-4-4-4, 4-6-5, ...); the longest one per start."""
    if len(run.group()) < 13:  # fewer than 13 characters hold fewer than 13 digits (most runs: dates, amounts)
        return []
    groups = [(m.start() + run.start(), m.end() + run.start(), m.group()) for m in re.finditer(r"\d+", run.group())]
    if sum(len(g[2]) for g in groups) < 13:  # no cap on the number of groups: the work per group is bounded
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
    """Masks e-mail addresses, phone numbers, Luhn-valid card numbers, Korean RRNs, Brazilian CPFs
    and CNPJs and IBANs (the enabled ``kinds``)."""

    kinds: frozenset[str] = frozenset(KINDS)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "Redactor":
        env = {} if env is None else env  # the environment only when given (pipeline.stage_settings)
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
        if ANY_DIGIT.search(text) is not None:  # \d = Unicode decimal digits, as str.isdecimal
            found += self._numbers(text)
        if not found:
            return []
        # by start; at one start the longest first, then the most specific kind
        found.sort(key=lambda span: (span[0], -span[1], _PRIORITY[span[2]]))
        out: list[tuple[int, int, str]] = []
        for span in found:  # overlapping spans are merged (masking the union leaks nothing)
            if out and span[0] < out[-1][1]:
                out[-1] = (out[-1][0], max(out[-1][1], span[1]), out[-1][2])
                continue
            out.append(span)
        return out

    def _numbers(self, text: str) -> list[tuple[int, int, str]]:
        """Card, phone and id spans of a ``text`` that has a digit (unordered, may overlap)."""
        found: list[tuple[int, int, str]] = []
        chained, phone_tail, iban = _number_hints(text)
        if "card" in self.kinds and chained:
            for m in DIGIT_RUN.finditer(text):
                found += _cards(m)
        if "phone" in self.kinds and ("+" in text or phone_tail):
            for m in PHONE.finditer(text):
                if 8 <= len(_digits(m.group(1))) <= 15:
                    found.append((m.start(1), m.end(1), "phone"))
        found += _ids(text, self.kinds, chained, iban)
        return found

    def _mask_once(self, text: str) -> str:
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

    def text(self, text: str) -> str:
        """``text`` with every span masked (same length); the same object when nothing was found.

        Repeated until nothing more is found (a masked letter no longer stops a neighbour's
        boundary check), so masking is idempotent: ``text(text(s)) == text(s)``.  Each round masks
        at least one more letter or digit, so this ends; in practice after one or two rounds.
        Texts up to :data:`CACHED_TEXT_CHARS` are remembered (playbook lines and reasons repeat)."""
        if len(text) > CACHED_TEXT_CHARS:
            return self._masked(text)
        out = _masked_cached(self, text)
        return text if out is None else out

    def _masked(self, text: str) -> str:
        out = self._mask_once(text)
        while out is not text:
            text, out = out, self._mask_once(out)
        return out

    # -- documents -------------------------------------------------------------------------------
    def _free(self, value: Any, numbers: bool = False) -> Any:
        """Redact every string in ``value`` except under id keys (``_is_id``).  With ``numbers``
        (event attributes), a whole number that is personal data (a CPF or card number sent as a
        JSON number) becomes the masked string of its digits."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, list):
            return [self._free(v, numbers) for v in value]
        if isinstance(value, dict):
            out: dict[Any, Any] = {}
            for k, v in value.items():
                if _is_id(k) or (not numbers and type(v) in _NON_TEXT):  # kept as they are, without a call
                    out[k] = v
                elif type(v) is str:
                    out[k] = self.text(v)
                else:
                    out[k] = self._free(v, numbers)
            return out
        if numbers and isinstance(value, int) and not isinstance(value, bool) and value >= 10**7:
            digits = str(value)
            spans = self.spans(digits)
            # 13-digit epoch milliseconds (2000-2099) are kept: only the Luhn check would say "card"
            if spans and not (all(k == "card" for *_, k in spans) and _EPOCH_MS[0] <= value < _EPOCH_MS[1]):
                return self.text(digits)
        return value

    def event(self, event: Mapping[str, Any]) -> dict[str, Any]:
        """A copy of an input event with its free-text fields redacted."""
        out = dict(event)  # most values are kept: copied at once, the others replaced in place (same order)
        for k, v in event.items():
            if k in _FREE_KEYS:
                out[k] = self._free(v, numbers=k == "attributes")
            elif type(v) in _SCALARS:  # most values: no dict or list to look into
                continue
            elif isinstance(v, dict):
                out[k] = self.event(v)
            elif isinstance(v, list):
                out[k] = [self.event(x) if isinstance(x, dict) else x for x in v]
        return out

    def classification(self, classification: Mapping[str, Any] | None, classified_text: str | None) -> Any:
        """Evidence texts masked; offsets index the (masked) classified text, so they stay true."""
        if not classification or not self.kinds:  # not self.enabled
            return classification
        pain_points = classification.get("pain_points") or []
        # most classifications have no evidence: the classified text is masked only for some
        masked = self.text(classified_text) if pain_points and isinstance(classified_text, str) else None
        pains = []
        for pp in pain_points:
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
    """``id``, ``order_id``, ``ticket_ids``, ``orderId``, ``ticketIds``: kept whole, for joins."""
    return isinstance(key, str) and _is_id_name(key)


@lru_cache(maxsize=4096)
def _is_id_name(key: str) -> bool:
    """:func:`_is_id` of a string, remembered (the keys of alert details and attributes repeat)."""
    return key.lower() in ("id", "ids") or key.endswith(("_id", "_ids", "Id", "Ids"))


CACHED_TEXT_CHARS = 400


@lru_cache(maxsize=8192)
def _masked_cached(redactor: Redactor, text: str) -> str | None:
    """:meth:`Redactor.text` of a short text, remembered; ``None`` when nothing was masked."""
    out = redactor._masked(text)
    return None if out is text else out


@lru_cache(maxsize=1)
def default_redactor() -> Redactor:
    """The default redaction (every kind on), for callers that pass no redactor; the worker passes the
    one of its settings tree (``PIPELINE_REDACT``, ``PIPELINE_REDACT_KINDS``)."""
    return Redactor.from_env()


def redact_alert(alert: dict[str, Any], redactor: Redactor | None = None) -> dict[str, Any]:
    return (redactor or default_redactor()).alert(alert)


__all__ = ["KINDS", "Redactor", "cnpj_ok", "cpf_ok", "default_redactor", "iban_ok", "luhn_ok", "redact_alert", "rrn_ok"]
