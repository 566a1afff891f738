"""Analyser for Latin-script languages (English, Portuguese, ...): text -> signals.

Tokens are lower-cased, stripped of accents and stemmed, so "delivered" /
"deliveries" meet "deliver" / "delivery". English uses a built-in inflectional
stemmer (-s/-ed/-ing; derivations such as helpful/help stay apart); other
languages use the Snowball stemmer named in the taxonomy when the optional
``snowballstemmer`` package is installed (exact word forms otherwise).
Lexicon terms may be phrases ("customer service", "money back").

Negation: a cue ("not", "never", "n't", "no", "não", ...) flips the polar words
of the next few tokens up to the clause boundary (punctuation or a contrast
word such as "but"). A negated *failure verb* ("doesn't work", "never arrived")
is a complaint by itself; "no"/"without" before an aspect ("no refund", "no
reply") marks it as lacking.
"""

from __future__ import annotations

import re
import unicodedata
from bisect import bisect_left, bisect_right
from dataclasses import dataclass, field
from functools import lru_cache

from .model import Signal
from .taxonomy import Taxonomy

try:  # optional dependency: better stems for English and Portuguese
    import snowballstemmer as _snowball
except ImportError:  # pragma: no cover - exercised only without the package
    _snowball = None

NEGATION_SCOPE = 4       # tokens after a negation cue that it can reach
FAILURE_SCOPE = 3        # "doesn't (even) work": the failure verb must follow the cue closely
LACK_SCOPE = 2           # "no (working) charger"
INTENSIFIER_SCOPE = 2
FLIP_POSITIVE = -0.85    # "not good" is almost as bad as "bad"
FLIP_NEGATIVE = -0.5     # "not bad" is only mildly good
FAILURE_VALUE = -1.0
LACK_VALUE = -0.7
EXCESS_VALUE = -0.7
WISH_VALUE = -0.6

TOKEN_RE = re.compile(r"[^\W\d_]+(?:['’\-][^\W\d_]+)*|\d+(?:[.,:]\d+)*|[.!?;:,()\[\]…]|[-–—]{1,2}")
PUNCT = frozenset(".!?;:,()[]…-–—")


def _strip_accents(s: str) -> str:
    if s.isascii():
        return s
    return "".join(ch for ch in unicodedata.normalize("NFKD", s) if not unicodedata.combining(ch))


_VOWELS = frozenset("aeiouy")


def inflectional_stem(w: str) -> str:
    """Strip English inflections only (-s, -es, -ies, -ed, -ing), then a final -e.

    Unlike Porter/Snowball it keeps derivations apart (helpful != help,
    overly != over, lately != late), which matters for a sentiment lexicon.
    """
    if len(w) <= 3 or not w.isalpha():
        return w
    stem = w
    if w.endswith("ies") and len(w) > 4:
        stem = w[:-3] + "y"
    elif w.endswith("ied") and len(w) > 4:
        stem = w[:-3] + "y"
    elif w.endswith(("sses", "shes", "ches", "xes", "zes")):
        stem = w[:-2]
    elif w.endswith("s") and not w.endswith(("ss", "us", "is", "'s")):
        stem = w[:-1]
    elif w.endswith("ing") and len(w) > 5 and any(c in _VOWELS for c in w[:-3]):
        stem = w[:-3]
    elif w.endswith("ed") and len(w) > 4 and any(c in _VOWELS for c in w[:-2]):
        stem = w[:-2]
    if stem is not w and stem != w[:-1] and len(stem) > 3 and stem[-1] == stem[-2] and stem[-1] not in "lsz":
        stem = stem[:-1]  # stopped -> stop, shipping -> ship
    if len(stem) > 3 and stem.endswith("e"):
        stem = stem[:-1]  # arrive/arrived/arriving -> arriv
    return stem


@lru_cache(maxsize=8)
def _stemmer(name: str | None):
    if name in (None, "", "inflectional", "english_inflectional"):
        return inflectional_stem
    if _snowball is not None:
        try:
            st = _snowball.stemmer(name)
        except KeyError:
            st = None
        if st is not None:
            cache: dict[str, str] = {}

            def stem(w: str, _st=st, _c=cache) -> str:
                r = _c.get(w)
                if r is None:
                    r = _st.stemWord(w)
                    if len(_c) < 200_000:
                        _c[w] = r
                return r

            return stem
    return inflectional_stem if (name or "").startswith("english") else (lambda w: w)


def normalize(token: str) -> str:
    return _strip_accents(token.lower().replace("’", "'"))


@dataclass
class LatinMatcher:
    lang: str
    stem: object
    entries: dict[tuple[str, ...], list[tuple]] = field(default_factory=dict)
    max_len: int = 1
    patterns: list[tuple[re.Pattern[str], tuple]] = field(default_factory=list)
    negation_suffix: tuple[str, ...] = ()

    def key(self, token: str) -> str:
        n = normalize(token)
        if n.endswith("n't") and "n't" in self.negation_suffix:
            return "n't"
        return self.stem(n)  # type: ignore[operator]

    def add(self, term: str, role: tuple) -> None:
        toks = [t for t in TOKEN_RE.findall(term)]
        if not toks:
            return
        k = tuple(self.key(t) for t in toks)
        self.entries.setdefault(k, []).append(role)
        self.max_len = max(self.max_len, len(k))


def build_matcher(tax: Taxonomy, lang: str) -> LatinMatcher | None:
    lex = tax.lexicon(lang)
    if lex is None:
        return None
    m = LatinMatcher(lang=lang, stem=_stemmer(lex.stemmer), negation_suffix=tuple(lex.negation))
    for t in lex.negation:
        m.add(t, ("neg_cue",))
    for t in lex.lack:
        m.add(t, ("lack_cue",))
    for t, w in lex.intensifiers.items():
        m.add(t, ("intens", w))
    for t in lex.excess:
        m.add(t, ("excess",))
    for t in lex.clause_breaks:
        m.add(t, ("break",))
    for t in lex.failure_verbs:
        m.add(t, ("failure",))
    for t in lex.wish:
        m.add(t, ("wish",))
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


def _flip(v: float) -> float:
    return v * (FLIP_POSITIVE if v > 0 else FLIP_NEGATIVE)


def analyse(text: str, tax: Taxonomy, lang: str, *, clause_offset: int = 0) -> list[Signal]:
    """Signals for the Latin-script words of ``text`` (other scripts are skipped)."""
    m: LatinMatcher | None = tax.compiled(f"latin:{lang}", lambda t: build_matcher(t, lang))
    if m is None:
        return []
    toks = [(mt.group(), mt.start(), mt.end()) for mt in TOKEN_RE.finditer(text)]
    toks = [t for t in toks if not t[0][0].isalpha() or t[0][0].isascii() or _is_latin(t[0][0])]
    keys = [m.key(t[0]) if t[0] not in PUNCT else t[0] for t in toks]
    tok_starts = [t[1] for t in toks]
    tok_ends = [t[2] for t in toks]
    # regex hits first; the tokens they cover are not matched again
    covered: set[int] = set()
    pattern_hits: list[tuple[int, int, int, tuple]] = []  # (tok_index, start, end, role)
    for pat, role in m.patterns:
        for mt in pat.finditer(text):
            if mt.end() <= mt.start():
                continue
            # tokens overlapping the match (token ends are increasing)
            lo = bisect_right(tok_ends, mt.start())
            idx = list(range(lo, bisect_left(tok_starts, mt.end())))
            covered.update(idx)
            ti = idx[0] if idx else max(0, lo - 1)  # e.g. an emoji: the token before it
            pattern_hits.append((ti, mt.start(), mt.end(), role))
    if not toks:
        return [
            Signal("polar", 0, s, e, clause_offset, value=role[2], category=role[1])
            for _, s, e, role in pattern_hits
        ]
    # greedy longest-phrase matching
    matches: list[tuple[int, int, list[tuple]]] = []  # (first_tok, last_tok, roles)
    i = 0
    n = len(toks)
    while i < n:
        if i in covered:
            i += 1
            continue
        hit = None
        for L in range(min(m.max_len, n - i), 0, -1):
            if any((i + j) in covered for j in range(L)):
                continue
            roles = m.entries.get(tuple(keys[i : i + L]))
            if roles:
                hit = (i, i + L - 1, roles)
                break
        if hit:
            matches.append(hit)
            i = hit[1] + 1
        else:
            i += 1
    by_tok = {a: (a, b, roles) for a, b, roles in matches}
    pat_by_tok: dict[int, list[tuple[int, int, tuple]]] = {}
    for ti, s, e, role in pattern_hits:
        pat_by_tok.setdefault(ti, []).append((s, e, role))

    signals: list[Signal] = []
    clause = clause_offset
    neg_left = 0
    neg_start = -1
    neg_tok = -1
    lack_left = 0
    intens_left, intens = 0, 1.0
    excess_pending = False
    i = 0
    while i < n:
        tok, start, end = toks[i]
        if tok in PUNCT:
            clause += 1
            neg_left = lack_left = intens_left = 0
            excess_pending = False
            i += 1
            continue
        for s, e, role in pat_by_tok.get(i, ()):
            _, cat, val = role
            signals.append(Signal("polar", i, s, e, clause, value=val, category=cat))
        entry = by_tok.get(i)
        if entry is None:
            if excess_pending and i not in covered and tok.isalpha():
                signals.append(Signal("polar", i, start, end, clause, value=EXCESS_VALUE))
            excess_pending = False
            neg_left = max(0, neg_left - 1)
            lack_left = max(0, lack_left - 1)
            intens_left = max(0, intens_left - 1)
            i += 1
            continue
        a, b, roles = entry
        if any(r[0] == "pos" and r[1] is not None for r in roles):
            # a category-bound polarity wins over the generic one for the same word
            roles = [r for r in roles if not (r[0] == "pos" and r[1] is None)]
        span_start, span_end = toks[a][1], toks[b][2]
        width = b - a + 1
        kinds = {r[0] for r in roles}
        if "break" in kinds and not (kinds & {"pos", "aspect", "ctx"}):
            clause += 1
            neg_left = lack_left = intens_left = 0
            excess_pending = False
            i = b + 1
            continue
        consumed_neg = False
        if "neg_cue" in kinds or "lack_cue" in kinds:
            neg_left, neg_start, neg_tok = NEGATION_SCOPE + 1, span_start, b
            if "lack_cue" in kinds:
                lack_left = LACK_SCOPE + 1
            consumed_neg = True
        elif "intens" in kinds:
            intens = max(r[1] for r in roles if r[0] == "intens")
            intens_left = INTENSIFIER_SCOPE + 1
        elif "excess" in kinds:
            excess_pending = True
            neg_left = max(0, neg_left - width)
            i = b + 1
            continue
        elif "wish" in kinds:
            signals.append(Signal("polar", a, span_start, span_end, clause, value=WISH_VALUE))
        polar_done = False
        negated = neg_left > 0 and not consumed_neg
        if (negated and "failure" in kinds and a - neg_tok <= FAILURE_SCOPE
                and not any(r[0] == "pos" and r[2] < 0 for r in roles)):
            # "doesn't work": the failure wins over the word's own (mild) polarity
            signals.append(Signal("polar", a, neg_start, span_end, clause, value=FAILURE_VALUE))
            polar_done = True
            roles = [r for r in roles if r[0] not in ("pos", "failure")]
        for r in roles:
            if r[0] == "aspect":
                signals.append(Signal("aspect", a, span_start, span_end, clause, category=r[1]))
                if lack_left > 0 and not any(x[0] == "pos" for x in roles):
                    signals.append(
                        Signal("polar", a, neg_start, span_end, clause, value=LACK_VALUE, category=r[1])
                    )
                    lack_left = 0
            elif r[0] == "pos":
                v = r[2]
                s0 = span_start
                if intens_left > 0:
                    v *= intens
                if excess_pending and v < 0:
                    v *= 1.3
                if neg_left > 0 and not consumed_neg:
                    v = _flip(v)
                    s0 = neg_start
                signals.append(Signal("polar", a, s0, span_end, clause, value=v, category=r[1]))
                polar_done = True
            elif r[0] == "ctx":
                w = r[2] * (intens if intens_left > 0 else 1.0)
                s0 = span_start
                if neg_left > 0 and not consumed_neg:
                    w, s0 = _flip(w), neg_start
                signals.append(
                    Signal("context", a, s0, span_end, clause, ctx=((r[1], w),))
                )
        if excess_pending and not polar_done and "aspect" in kinds:
            signals.append(Signal("polar", a, span_start, span_end, clause, value=EXCESS_VALUE))
        excess_pending = False
        if polar_done:
            intens_left = 0
        if not consumed_neg:
            neg_left = max(0, neg_left - width)
            lack_left = max(0, lack_left - width)
        intens_left = max(0, intens_left - width)
        i = b + 1
    return signals


def _is_latin(ch: str) -> bool:
    return "LATIN" in unicodedata.name(ch, "")


