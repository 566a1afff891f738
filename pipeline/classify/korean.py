"""Korean analyser: Kiwi morphological analysis -> signals.

Lexicon terms are analysed with Kiwi once (when the taxonomy is compiled) and
matched against the content morphemes of the text, so conjugated and spacing
variants meet the same entry: "늦다" matches 늦었어요 / 늦게 와서 and "느리다"
matches 배송이느려요. Nouns also match as prefixes of longer compounds
(불량 -> 불량품). A term may pin a part-of-speech tag with ``form/TAG``
("싸/VA" is cheap, not 싸다 "to wrap").

Negation:
  * short form: 안 / 못 before a predicate ("안 좋아요", "못 쓰겠어요");
  * long form: -지 않다 / -지 못하다 after it ("편안하지 않아요");
  * 아니다 / 없다 after a word ("저렴한 가격도 아닌데", "문제없이", "답변이 없어요");
  * noun prefixes 불-/무- ("불친절").
A negated *failure verb* (되다, 켜지다, 터지다, ...) is a complaint by itself
("연결이 안 돼요"); an aspect followed by 없다 is lacking ("설명서가 없어요").
"-었으면 좋겠다" is an unmet wish, mildly negative.

The Kiwi instance is built once per process (it takes ~2 s) on first use.
"""

from __future__ import annotations

import logging
import re
import threading
from bisect import bisect_right
from dataclasses import dataclass, field
from queue import SimpleQueue
from typing import Any, Iterable

from .model import Signal
from .taxonomy import Taxonomy

FLIP_POSITIVE = -0.9
FLIP_NEGATIVE = -0.5
FAILURE_VALUE = -1.0
LACK_VALUE = -0.7
WISH_VALUE = -0.6
PRE_NEG_SCOPE = 2     # content units after 안/못
POST_NEG_SCOPE = 3    # content units before 않다/없다/아니다
INTENSIFIER_SCOPE = 2
WELL_ADVERBS = frozenset({"잘"})  # "잘 받았어요", "잘 터져요": done well -> mildly positive
WELL_VALUE = 0.5

_N = {"NNG", "NNP", "NNB", "NR", "XR", "SL", "SH"}
_V = {"VV", "VA", "VX", "VCN"}
_M = {"MAG", "MAJ", "MM", "IC"}
_P = {"XPN"}
_BREAK_TAGS = {"SF", "SE", "SP", "SS"}
_WISH_EC = {"면", "으면"}
_WISH_VERBS = {"하", "바라", "싶"}
_NOT_YET = {"아직"}
_TRAILING = " \t\r\n.,!?~…;:)]}\"'ㅋㅎㅠㅜ^*"

# Kiwi options: the default model without the typo-correction, multi-word and default (proper-noun)
# dictionaries. Measured on the 315 Smartstore reviews: without typo / multi-word ~16 % faster (527 ->
# 612 texts/s of CPU time for the whole classifier), 5 of 315 analyses differ; without the default
# dictionary too (issue 17), Kiwi alone 994 -> 1,108 texts/s, 2 more analyses differ, and its memory
# after 1,500 texts 313 -> 237 MB. Pain-point micro-F1 (0.762) and sentiment balanced accuracy
# (0.754) unchanged each time. One worker thread for the texts analysed ahead (:func:`prefetch`): the
# worker's own thread is busy too, and a second Kiwi thread would take a core from it (or the broker).
# Set before the first Korean text to change them.
KIWI_OPTIONS: dict = {"load_typo_dict": False, "load_multi_dict": False, "load_default_dict": False,
                      "num_workers": 1}

_kiwi = None
_kiwi_lock = threading.Lock()
log = logging.getLogger("pipeline.classify")


def get_kiwi():
    """Module-level lazy singleton (Kiwi() is slow to build, fast to use)."""
    global _kiwi
    if _kiwi is None:
        with _kiwi_lock:
            if _kiwi is None:
                from kiwipiepy import Kiwi

                _kiwi = Kiwi(**KIWI_OPTIONS)
    return _kiwi


class _Ahead:
    """Korean texts analysed on Kiwi's worker thread before their turn (issue 17).

    :func:`prefetch` hands a batch's texts to a collector thread, which gives them to Kiwi's
    multi-text analysis (Kiwi's C++ thread analyses them with the GIL released, on another core)
    and keeps each text's morphemes as they come; :func:`analyse` takes a text's morphemes from
    here when they are ready and otherwise analyses the text on its own thread as before: the
    caller never waits for the collector (Kiwi's iterator can take ~10 ms to hand over a result
    that is ready).  Kiwi's multi-text analysis gives the same morphemes as one text at a time (the
    same model and options).  A new batch drops what the last one did not take."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.generation = 0  # the batch whose morphemes are kept; earlier ones are dropped
        self.ready: dict[str, Any] = {}
        self.jobs: SimpleQueue[tuple[int, list[str]]] = SimpleQueue()
        self.thread: threading.Thread | None = None

    def submit(self, texts: Iterable[str]) -> None:
        batch = list(dict.fromkeys(texts))
        with self.lock:
            self.generation += 1
            self.ready.clear()
            if batch:
                self.jobs.put((self.generation, batch))
                if self.thread is None or not self.thread.is_alive():
                    self.thread = threading.Thread(target=self._collect, name="kiwi-ahead", daemon=True)
                    self.thread.start()

    def take(self, text: str) -> Any:
        """The morphemes of ``text`` if they are ready, else ``None`` (never waits)."""
        with self.lock:
            return self.ready.pop(text, None)

    def _collect(self) -> None:
        while True:
            generation, batch = self.jobs.get()
            if generation != self.generation:
                continue  # superseded before it started
            try:
                for text, morphs in zip(batch, get_kiwi().tokenize(batch)):
                    with self.lock:  # a superseded batch is still read to its end, and dropped
                        if generation == self.generation:
                            self.ready[text] = morphs
            except Exception:  # a text Kiwi fails on fails again in analyse(), on its own record
                log.debug("Korean prefetch failed", extra={"count": len(batch)})


_ahead = _Ahead()


def prefetch(texts: Iterable[str]) -> None:
    """Start analysing ``texts`` (exactly as :func:`analyse` will be given them) on Kiwi's worker
    thread; what the previous call submitted and :func:`analyse` did not take is dropped.
    Kiwi without worker threads (``num_workers=0``) analyses each text in :func:`analyse` instead."""
    if get_kiwi().num_workers > 0:
        _ahead.submit(texts)


def _cls(tag: str) -> str | None:
    tag = tag.split("-")[0]
    if tag in _N:
        return "N"
    if tag in _V:
        return "V"
    if tag in _M:
        return "M"
    if tag in _P:
        return "P"
    return None


@dataclass
class KoreanMatcher:
    # first form -> [(key, roles)], longest key first; key = ((form, cls_or_tag), ...)
    entries: dict[str, list[tuple[tuple[tuple[str, str], ...], list[tuple]]]] = field(default_factory=dict)
    nouns: dict[str, list[tuple]] = field(default_factory=dict)  # single-noun terms, for prefix match
    patterns: list[tuple[re.Pattern[str], tuple]] = field(default_factory=list)
    negation_pre: frozenset[str] = frozenset()
    negation_post: frozenset[str] = frozenset()
    lack: frozenset[str] = frozenset()
    negation_prefixes: frozenset[str] = frozenset()
    breaks: frozenset[str] = frozenset()
    contrast: frozenset[str] = frozenset()

    def add(self, term: str, role: tuple) -> None:
        key = _term_key(term)
        if not key:
            return
        bucket = self.entries.setdefault(key[0][0], [])
        for k, roles in bucket:
            if k == key:
                roles.append(role)
                break
        else:
            bucket.append((key, [role]))
            bucket.sort(key=lambda kr: -len(kr[0]))
        if len(key) == 1 and key[0][1] == "N" and len(key[0][0]) >= 2:
            self.nouns.setdefault(key[0][0], []).append(role)


def _term_key(term: str) -> tuple[tuple[str, str], ...]:
    term = term.strip()
    if "/" in term:  # explicit "form/TAG" (single morpheme)
        form, tag = term.rsplit("/", 1)
        return ((form.strip(), tag.strip()),)
    out = []
    for tok in get_kiwi().tokenize(term):
        c = _cls(tok.tag)
        if c is not None:
            out.append((tok.form, c))
    return tuple(out)


def build_matcher(tax: Taxonomy, lang: str = "ko") -> KoreanMatcher | None:
    lex = tax.lexicon(lang)
    if lex is None:
        return None
    m = KoreanMatcher(
        negation_pre=frozenset(lex.negation),
        negation_post=frozenset(lex.negation_post),
        lack=frozenset(lex.lack),
        negation_prefixes=frozenset(lex.negation_prefixes),
        breaks=frozenset(lex.clause_breaks),
        contrast=frozenset(lex.contrast),
    )
    for t, w in lex.intensifiers.items():
        m.add(t, ("intens", w))
    for t in lex.failure_verbs:
        m.add(t, ("failure",))
    for t, w in lex.positive.items():
        m.add(t, ("pos", None, w))
    for t, w in lex.negative.items():
        m.add(t, ("pos", None, -w))
    for p, w in lex.positive_patterns:
        m.patterns.append((p, ("pos", None, w)))
    for p, w in lex.negative_patterns:
        m.patterns.append((p, ("pos", None, -w)))
    for cat in tax.categories:
        for t in cat.role_terms("aspects", lang):
            m.add(t, ("aspect", cat.id))
        for t, w in cat.role_terms("negative", lang).items():
            m.add(t, ("pos", cat.id, -w))
        for t, w in cat.role_terms("positive", lang).items():
            m.add(t, ("pos", cat.id, w))
        for t, w in cat.role_terms("context", lang).items():
            m.add(t, ("ctx", cat.id, w))
        for p, w in cat.patterns.get(lang, ()):
            m.patterns.append((p, ("pos", cat.id, -w)))
    return m


@dataclass
class _Unit:
    first: int          # morpheme index range
    last: int
    start: int          # char offsets
    end: int
    cls: str | None
    form: str
    roles: list[tuple]
    clause: int
    value: float = 0.0  # polar value after modifiers (0 = none)
    category: str | None = None
    polar: bool = False
    neg_start: int | None = None  # start of the negation cue that applies
    neg_end: int | None = None
    well: bool = False  # positive only through a preceding 잘 ("잘 돼요")


def _eojeol_end(text: str, pos: int) -> int:
    """End of the space-delimited word containing ``pos``, trailing punctuation trimmed."""
    n = len(text)
    e = pos
    while e < n and not text[e].isspace():
        e += 1
    while e > pos and text[e - 1] in _TRAILING:
        e -= 1
    return max(e, pos)


def _flip(v: float) -> float:
    return v * (FLIP_POSITIVE if v > 0 else FLIP_NEGATIVE)


@dataclass(slots=True)
class _Morphs:
    """Kiwi's morphemes of a text as parallel lists, with the clause index of each."""

    forms: list[str]
    tags: list[str]     # without the "-..." suffix
    starts: list[int]   # char offsets
    ends: list[int]
    clause_of: list[int] = field(default_factory=list)

    def prev(self, u: _Unit, back: int = 1) -> tuple[str, str]:
        """(form, tag) of the morpheme ``back`` positions before unit ``u``; ("", "") at the start."""
        j = u.first - back
        return (self.forms[j], self.tags[j]) if j >= 0 else ("", "")


def analyse(text: str, tax: Taxonomy, lang: str = "ko", *, clause_offset: int = 0,
            contrast: set[int] | None = None) -> list[Signal]:
    """Signals of ``text``; ``contrast`` (if given) receives the ids of clauses that end
    with a contrast cue (-지만, -는데, 근데, 하지만 ...)."""
    m: KoreanMatcher | None = tax.compiled(f"kiwi:{lang}", lambda t: build_matcher(t, lang))
    if m is None:
        return []
    morphs = _ahead.take(text)
    if morphs is None:
        morphs = get_kiwi().tokenize(text)
    if not morphs:
        return []
    mo = _Morphs(
        forms=[t.form for t in morphs],
        tags=[t.tag.split("-")[0] for t in morphs],
        starts=[t.start for t in morphs],
        ends=[t.start + t.len for t in morphs],
    )
    mo.clause_of = _clause_ids(mo, m, clause_offset, contrast)
    units, covered = _pattern_units(text, m, mo)
    units.extend(_lexicon_units(m, mo, covered))
    units.sort(key=lambda u: u.first)
    _set_polar_values(units)
    _apply_modifiers(text, m, mo, units)
    return _signals(text, units)


def _clause_ids(mo: _Morphs, m: KoreanMatcher, clause_offset: int, contrast: set[int] | None) -> list[int]:
    """Clause index of each morpheme (from ``clause_offset``); clauses that end with a contrast
    cue are added to ``contrast``."""
    forms, tags = mo.forms, mo.tags
    clause_of = []
    clause = clause_offset
    for i, (f, tg) in enumerate(zip(forms, tags)):
        clause_of.append(clause)
        nxt = tags[i + 1] if i + 1 < len(tags) else ""
        if tg in _BREAK_TAGS or tg == "EF":
            clause += 1
        elif tg == "EC" and f in m.breaks and nxt != "VX":
            if contrast is not None and f in m.contrast:
                contrast.add(clause)
            clause += 1
        elif tg == "MAJ" and f in m.breaks:
            if contrast is not None and f in m.contrast:
                contrast.add(clause)
            clause_of[i] = clause + 1
            clause += 1
    return clause_of


def _pattern_units(text: str, m: KoreanMatcher, mo: _Morphs) -> tuple[list[_Unit], set[int]]:
    """Units of the regex hits (surface forms Kiwi splits oddly, e.g. 싸구려) and the morpheme
    indices they cover."""
    starts, ends, n = mo.starts, mo.ends, len(mo.forms)
    covered: set[int] = set()
    pat_units: list[_Unit] = []
    for pat, role in m.patterns:
        for mt in pat.finditer(text):
            # morpheme starts are non-decreasing; ends nearly so (step back a little)
            i = max(0, bisect_right(ends, mt.start()) - 2)
            idx = []
            while i < n and starts[i] < mt.end():
                if ends[i] > mt.start():
                    idx.append(i)
                i += 1
            if not idx:
                continue
            covered.update(idx)
            u = _Unit(idx[0], idx[-1], mt.start(), mt.end(), "N", mt.group(), [role], mo.clause_of[idx[0]])
            pat_units.append(u)
    return pat_units, covered


def _match_at(m: KoreanMatcher, mo: _Morphs, content: list[int], k: int) -> tuple[list[int], list[tuple]] | None:
    """Longest lexicon term starting at content morpheme ``content[k]`` (within its clause), else
    a single-noun term that is a prefix of a longer noun: (morpheme indices, roles), or None."""
    forms, tags, clause_of = mo.forms, mo.tags, mo.clause_of
    i = content[k]
    for key, roles in m.entries.get(forms[i], ()):
        L = len(key)
        if k + L > len(content):
            continue
        idxs = content[k : k + L]
        if any(clause_of[j] != clause_of[i] for j in idxs):
            continue
        if all(
            forms[j] == f and (c == _cls(tags[j]) or c == tags[j])
            for j, (f, c) in zip(idxs, key)
        ):
            return idxs, roles
    if _cls(tags[i]) == "N" and len(forms[i]) >= 3:
        for cut in range(len(forms[i]) - 1, 1, -1):
            roles = m.nouns.get(forms[i][:cut])
            if roles:
                return [i], roles
    return None


def _lexicon_units(m: KoreanMatcher, mo: _Morphs, covered: set[int]) -> list[_Unit]:
    """Content units (morphemes not covered by a regex hit) with longest-match lexicon lookup."""
    forms, tags, starts, ends, clause_of = mo.forms, mo.tags, mo.starts, mo.ends, mo.clause_of
    content = [i for i in range(len(forms)) if _cls(tags[i]) is not None and i not in covered]
    units: list[_Unit] = []
    k = 0
    while k < len(content):
        i = content[k]
        best = _match_at(m, mo, content, k)
        if best is None:
            units.append(_Unit(i, i, starts[i], ends[i], _cls(tags[i]), forms[i], [], clause_of[i]))
            k += 1
        else:
            idxs, roles = best
            units.append(
                _Unit(idxs[0], idxs[-1], starts[idxs[0]], ends[idxs[-1]], _cls(tags[idxs[-1]]),
                      forms[i], list(roles), clause_of[i])
            )
            k += len(idxs)
    return units


def _set_polar_values(units: list[_Unit]) -> None:
    """Each unit's lexicon polarity; a category-bound one wins over the generic one for the same word."""
    for u in units:
        pos_roles = [r for r in u.roles if r[0] == "pos"]
        if pos_roles:
            r = next((r for r in pos_roles if r[1] is not None), pos_roles[0])
            u.value, u.category, u.polar = r[2], r[1], True


@dataclass(slots=True)
class _Pending:
    """Modifiers waiting for the next units of a clause (see :func:`_apply_modifiers`)."""

    neg: int = 0                 # units a short negation (안/못) may still reach
    neg_cue: _Unit | None = None
    int_left: int = 0            # units an intensifier may still reach ...
    intens: float = 1.0          # ... and its factor
    prefix: bool = False         # a negating noun prefix (불-, 무-) before the next noun
    well: bool = False           # a preceding 잘 ("잘 돼요")


def _apply_modifiers(text: str, m: KoreanMatcher, mo: _Morphs, units: list[_Unit]) -> None:
    """Apply wishes, negation cues (before and after), 잘 and intensifiers to the units' values."""
    st = _Pending()
    for ui, u in enumerate(units):
        roles = {r[0] for r in u.roles}
        if ui and units[ui - 1].clause != u.clause:
            st.neg = st.int_left = 0
            st.prefix = False
        if _unmet_wish(mo, units, ui, u):
            continue
        if _negation_cue(text, m, mo, units, ui, u, roles, st):
            continue
        _well_done(m, mo, u, st)
        if "intens" in roles and not u.polar:
            st.intens = max(r[1] for r in u.roles if r[0] == "intens")
            st.int_left = INTENSIFIER_SCOPE
            continue
        _apply_pending(mo, u, roles, st)


def _unmet_wish(mo: _Morphs, units: list[_Unit], ui: int, u: _Unit) -> bool:
    """"-었으면 좋겠다 / 하다": what is wished for is missing. Cancels the positive values before
    the wish in its clause; True when the unit itself became the (negative) wish."""
    if mo.prev(u)[0] in _WISH_EC and mo.prev(u, 2)[1] == "EP" and u.cls == "V":
        for w in units[:ui]:
            if w.clause == u.clause and w.polar and w.value > 0:
                w.value, w.polar = 0.0, False
        if (u.polar and u.value > 0) or mo.forms[u.first] in _WISH_VERBS:
            u.value, u.polar, u.category = WISH_VALUE, True, None
            return True
    return False


def _negation_cue(text: str, m: KoreanMatcher, mo: _Morphs, units: list[_Unit], ui: int, u: _Unit,
                  roles: set[str], st: _Pending) -> bool:
    """Handle ``u`` when it is a negation cue: a short one (안, 못; 않 misspelt for 안: "잘 않되요")
    or a noun prefix opens a scope, a post-position one (-지 않다, 아니다, 없다) negates back.
    True when ``u`` was a cue."""
    f0, t0 = mo.forms[u.first], mo.tags[u.first]
    if not roles and (
        f0 in m.negation_pre or (f0 == "않" and _cls(mo.prev(u)[1]) is not None)
    ):
        st.neg, st.neg_cue = PRE_NEG_SCOPE, u
        return True
    if t0 in _P and f0 in m.negation_prefixes and not roles:
        st.prefix = True
        st.neg_cue = u
        return True
    if not u.polar and (f0 in m.negation_post or f0 in m.lack) and "failure" not in roles:
        _negate_back(units, ui, u, f0 in m.lack and f0 not in m.negation_post, _eojeol_end(text, u.start), m)
        return True
    return False


def _well_done(m: KoreanMatcher, mo: _Morphs, u: _Unit, st: _Pending) -> None:
    """A predicate right after 잘 ("잘 받았어요", "잘 구입했다") is mildly positive; note a new 잘."""
    f0 = mo.forms[u.first]
    if st.well:
        st.well = False
        hada = u.cls == "N" and u.last + 1 < len(mo.tags) and mo.tags[u.last + 1] == "XSV"  # 잘 구입했다
        if (u.cls == "V" or hada) and not u.polar and not st.neg and f0 not in m.negation_pre:
            u.value, u.polar, u.category, u.well = WELL_VALUE, True, None, True
    if f0 in WELL_ADVERBS and not u.polar:
        st.well = True


def _apply_pending(mo: _Morphs, u: _Unit, roles: set[str], st: _Pending) -> None:
    """Apply a pending noun prefix, intensifier and short negation to ``u`` and count down their scopes."""
    if st.prefix and u.cls == "N":
        st.prefix = False
        if u.polar:
            u.value = _flip(u.value)
            u.neg_start = st.neg_cue.start if st.neg_cue else None
    if st.int_left and u.polar:
        u.value *= st.intens
        st.int_left = 0
    if st.neg:
        if u.polar:
            u.value = _flip(u.value)
            u.neg_start = st.neg_cue.start if st.neg_cue else None
            st.neg = 0
        elif "failure" in roles and not _tentative(mo.forms, u, mo.clause_of):
            u.value, u.polar = FAILURE_VALUE, True
            u.neg_start = st.neg_cue.start if st.neg_cue else None
            st.neg = 0
        elif "ctx" in roles:
            u.neg_start = st.neg_cue.start if st.neg_cue else u.start
            st.neg = 0
        elif u.cls == "V":
            st.neg = 0
        else:
            st.neg -= 1
    if st.int_left and not u.polar:
        st.int_left -= 1


def _signals(text: str, units: list[_Unit]) -> list[Signal]:
    """Aspect, context and polar signals of the units, spans widened to their negation cues."""
    signals: list[Signal] = []
    for u in units:
        for r in u.roles:
            if r[0] == "aspect":
                signals.append(Signal("aspect", u.first, u.start, u.end, u.clause, category=r[1]))
            elif r[0] == "ctx":
                w = r[2]
                s0, e0 = u.start, _eojeol_end(text, u.start)
                if u.neg_start is not None:
                    w, s0 = _flip(w), min(s0, u.neg_start)
                elif u.neg_end is not None:
                    w, e0 = _flip(w), max(e0, u.neg_end)
                signals.append(Signal("context", u.first, s0, e0, u.clause, ctx=((r[1], w),)))
        if u.polar and u.value != 0:
            s0 = u.start if u.neg_start is None else min(u.start, u.neg_start)
            e0 = u.end if u.cls == "N" and u.neg_end is None else _eojeol_end(text, u.start)
            if u.neg_end is not None:
                e0 = max(e0, u.neg_end)
            signals.append(
                Signal("polar", u.first, s0, e0, u.clause, value=u.value, category=u.category)
            )
    return signals


def _tentative(forms: list[str], u: _Unit, clause_of: list[int]) -> bool:
    """"아직 안 써 봤다" (not tried yet) is no failure."""
    j = u.last + 1
    if j + 1 < len(forms) and forms[j] in ("어", "아", "여") and forms[j + 1] == "보":
        return True
    i = u.first - 1
    while i >= 0 and clause_of[i] == clause_of[u.first]:
        if forms[i] in _NOT_YET:
            return True
        i -= 1
    return False


def _negate_back(units: list[_Unit], ui: int, cue: _Unit, lack_only: bool, cue_end: int,
                 m: KoreanMatcher) -> None:
    """Apply a post-position negation cue to the nearest suitable unit before it."""
    seen = 0
    j = ui - 1
    while j >= 0 and seen < POST_NEG_SCOPE and units[j].clause == cue.clause:
        t = units[j]
        roles = {r[0] for r in t.roles}
        if t.well and "failure" in roles and not lack_only:
            t.value, t.neg_end, t.well = FAILURE_VALUE, cue_end, False  # "잘 되지 않아요"
            return
        if t.polar:
            t.value = _flip(t.value)
            t.neg_end = cue_end
            return
        if "ctx" in roles:
            t.neg_end = cue_end
            return
        if "failure" in roles and not lack_only:
            t.value, t.polar, t.neg_end = FAILURE_VALUE, True, cue_end
            return
        if "aspect" in roles and cue.form in m.lack:
            cat = next(r[1] for r in t.roles if r[0] == "aspect")
            t.value, t.polar, t.category, t.neg_end = LACK_VALUE, True, cat, cue_end
            return
        if "intens" not in roles:
            seen += 1
        j -= 1
