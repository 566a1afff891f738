"""Analyser for Latin-script languages (English, Portuguese, ...): text -> :class:`Aggregate`.

Built for speed (tens of thousands of short texts per second on one core):

* one precompiled regex tokenizes the lower-cased text into plain strings;
* every distinct token is looked up once and cached (``LatinMatcher.word_cache``):
  its stem, its lexicon entry, whether a multi-word term starts with it, and which
  regex patterns it can trigger (patterns are gated by the literal word their match
  must start with, found by parsing the regex; a pattern with no such word runs on
  every text that has any lexicon hit);
* texts without a single lexicon token (and no pattern anchor) return at once;
* character offsets, evidence spans and pattern matching happen only when needed.

Tokens are lower-cased, stripped of accents and stemmed, so "delivered" /
"deliveries" meet "deliver" / "delivery". English uses a built-in inflectional
stemmer (-s/-ed/-ing; derivations such as helpful/help stay apart); other
languages use the Snowball stemmer named in the taxonomy when the optional
``snowballstemmer`` package is installed (exact word forms otherwise). Lexicon
terms may be phrases ("customer service", "money back").

Negation: a cue ("not", "never", "n't", "no", "não", ...) flips the polar words
of the next few tokens up to the clause boundary (punctuation or a contrast
word such as "but"). A negated *failure verb* ("doesn't work", "never arrived")
is a complaint by itself; "no"/"without" before an aspect ("no refund", "no
reply") marks it as lacking. Intensifiers ("very", "extremely" / "slightly")
scale the next polar word; "too" + a neutral word is negative ("too small").

General lexicon (sentiment only): words none of the taxonomy's lists has get the valence of a
broad general-purpose lexicon (``general_lexicon``, VADER's ~7,200 human-rated words via the
``vaderSentiment`` package; exact word forms, a short exclude list) plus hand-written
``sentiment_only`` review idioms ("blown away", "fell apart", "sent it back"). They move the
text's sentiment (half weight when the own lexicon found evidence: it knows the domain's word
senses better) but never make a pain point. Only the lexicon data is used; matching, negation,
intensifiers and contrast are this module's, so the speed is unchanged (cached per token).

Scoring (per clause, as in :mod:`.scoring`): a free polar word counts for the
nearest aspect of the clause; a category-bound word ("overpriced", "rude")
counts for its own category. A clearly negative clause total is a pain-point
candidate. Negative words with no aspect in their clause are *unattributed*;
with ``fallback: problems`` in the language lexicon only *problem* words
("broke", "crash", "doesn't work") are, so "I hate it" carries sentiment but no
pain point while "it keeps crashing" goes to the taxonomy's fallback category.
"""

from __future__ import annotations

import re
import unicodedata
from bisect import bisect_left, bisect_right
from dataclasses import dataclass, field
from functools import lru_cache

try:  # Python 3.11+
    import re._parser as _sre_parse  # type: ignore[import-not-found]
except ImportError:  # pragma: no cover
    import sre_parse as _sre_parse  # type: ignore[no-redef]

from .scoring import PAIN_THRESHOLD, Aggregate, contrast_weight
from .taxonomy import Taxonomy

try:  # optional dependency: better stems for Portuguese and other languages
    import snowballstemmer as _snowball
except ImportError:  # pragma: no cover - exercised only without the package
    _snowball = None

NEGATION_SCOPE = 4       # tokens after a negation cue that it can reach
FAILURE_SCOPE = 3        # "doesn't (even) work": the failure verb must follow the cue closely
LACK_SCOPE = 2           # "no (working) charger"
INTENSIFIER_SCOPE = 2
FLIP_POSITIVE = -0.85    # "not good" is almost as bad as "bad"
FLIP_NEGATIVE = -0.5     # "not bad" is only mildly good
FLIP_PROBLEM = -0.8      # "no problems at all", "never had any issues": clearly good
FAILURE_VALUE = -1.0
LACK_VALUE = -0.7
EXCESS_VALUE = -0.7
EXCESS_BOOST = 1.3       # "too slow" is worse than "slow"
WISH_VALUE = -0.6
COMPARATIVE_FACTOR = 0.3  # "much more expensive than a PC": a comparison, not a verdict
COMPARATIVE_SCOPE = 1     # the comparative word must follow right after ("more expensive than")
CONDITIONAL_FACTOR = 0.2  # "in case it breaks", "if it ever fails": hypothetical, weak evidence
SENTENCE_ATTACH = 6       # a clause with no aspect borrows the nearest one of its sentence within N tokens
NEG_COORDINATION = 3     # "no issues or problems": a negated complaint extends the scope
GENERAL_WITH_OWN = 0.5   # weight of general-lexicon evidence in a text that has own-lexicon evidence
WORD_CACHE_MAX = 200_000  # distinct tokens remembered per matcher (cleared when full)

TOKEN_RE = re.compile(r"[^\W\d_]+(?:['’\-][^\W\d_]+)*|\d+(?:[.,:]\d+)*|[.!?;:,()\[\]…]|[-–—]{1,2}")
# the same tokens for lower-cased ASCII text, faster
ASCII_TOKEN_RE = re.compile(r"[a-z]+(?:['\-][a-z]+)*|\d+(?:[.,:]\d+)*|[.!?;:,()\[\]]|-{1,2}")
PUNCT = frozenset(".!?;:,()[]…-–—")
SENTENCE_END = frozenset(".!?…")


def _strip_accents(s: str) -> str:
    if s.isascii():
        return s
    return "".join(ch for ch in unicodedata.normalize("NFKD", s) if not unicodedata.combining(ch))


_VOWELS = frozenset("aeiouy")
# word forms whose stem would collide with an unrelated opinion word: "please" (a politeness
# marker, frequent in requests: "please refund me") is not "pleased"
_STEM_KEEP = frozenset({"please"})


def inflectional_stem(w: str) -> str:
    """Strip English inflections only (-s, -es, -ies, -ed, -ing, -'s), then a final -e.

    Unlike Porter/Snowball it keeps derivations apart (helpful != help,
    overly != over, lately != late), which matters for a sentiment lexicon.
    """
    if w.endswith("'s") and len(w) > 3:
        w = w[:-2]
    if len(w) <= 3 or not w.isalpha() or w in _STEM_KEEP:
        return w
    stem = w
    if w.endswith("ies") and len(w) > 4:
        stem = w[:-3] + "y"
    elif w.endswith("ied") and len(w) > 4:
        stem = w[:-3] + "y"
    elif w.endswith(("sses", "shes", "ches", "xes", "zes")):
        stem = w[:-2]
    elif w.endswith("s") and not w.endswith(("ss", "us", "is")):
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
            return st.stemWord
    return inflectional_stem if (name or "").startswith("english") else (lambda w: w)


def normalize(token: str) -> str:
    return _strip_accents(token.lower().replace("’", "'"))


# ----------------------------------------------------------------------------- compiled lexicon

class Entry:
    """Everything one lexicon term (a word or a phrase) does; roles merged."""

    __slots__ = ("length", "neg", "lack", "intens", "excess", "brk", "failure", "wish", "cond", "contrast",
                 "polar", "aspects", "ctx", "bound", "general")

    def __init__(self, length: int) -> None:
        self.length = length
        self.neg = self.lack = self.excess = self.brk = self.failure = self.wish = self.cond = False
        self.contrast = False
        self.general = False  # polarity from the general lexicon: sentiment only, never a pain point
        self.intens = 0.0
        self.polar: list[tuple[str | None, float, bool]] = []  # (category, value, problem)
        self.aspects: list[str] = []
        self.ctx: list[tuple[str, float]] = []
        self.bound = False  # has a category-bound polarity (wins over the generic one)

    def finish(self) -> None:
        if any(c is not None for c, _, _ in self.polar):
            self.polar = [p for p in self.polar if p[0] is not None]
            self.bound = True
        # one value per category: the strongest magnitude
        best: dict[str | None, tuple[str | None, float, bool]] = {}
        for p in self.polar:
            old = best.get(p[0])
            if old is None or abs(p[1]) > abs(old[1]):
                best[p[0]] = (p[0], p[1], p[2] or (old[2] if old else False))
        self.polar = list(best.values())


class Tok:
    """Cached facts about one distinct lower-cased token. ``phrases``: the phrases that start with
    its key, by the key of their second word (longest first, as in ``LatinMatcher.phrases``)."""

    __slots__ = ("key", "entry", "phrases", "trig", "punct")

    def __init__(self, key, entry, phrases, trig, punct=False) -> None:  # noqa: ANN001
        self.key = key
        self.entry = entry
        self.phrases = phrases
        self.trig = trig
        self.punct = punct


_NEGATING_PREFIXES = frozenset({"non", "un", "in", "im", "dis", "anti", "not", "no", "never", "half", "semi",
                                 "less", "mis", "under", "de"})
_PUNCT_TOK = Tok(None, None, None, (), punct=True)
_MISS = object()  # never a cache value


def _literal_prefixes(items, limit: int = 64):  # noqa: ANN001 - sre parse tree
    """Possible literal beginnings of a parsed regex: (set of str, complete) or None."""
    prefixes = {""}
    for op, av in items:
        name = str(op)
        if name == "AT":
            continue
        if name == "LITERAL":
            prefixes = {p + chr(av) for p in prefixes}
            continue
        sub = None
        if name == "SUBPATTERN":
            sub = _literal_prefixes(av[-1], limit)
        elif name == "BRANCH":
            alts = [_literal_prefixes(b, limit) for b in av[1]]
            if any(a is None for a in alts):
                sub = None
            else:
                sub = (set().union(*(a[0] for a in alts)), all(a[1] for a in alts))
        elif name == "IN":
            if all(str(o) == "LITERAL" for o, _ in av) and len(av) <= limit:
                sub = ({chr(c) for _, c in av}, True)
        elif name in ("MAX_REPEAT", "MIN_REPEAT"):
            lo, _hi, inner = av
            if lo == 0:
                return prefixes, False
            one = _literal_prefixes(inner, limit)
            if one is not None:
                sub = (one[0], False)
        if sub is None:
            return prefixes, False
        prefixes = {p + s for p in prefixes for s in sub[0]}
        if len(prefixes) > limit:
            return None
        if not sub[1]:
            return prefixes, False
    return prefixes, True


def _is_space_item(item) -> bool:  # noqa: ANN001
    """``\\s+`` or a literal space: what follows starts a new word."""
    op, av = item
    name = str(op)
    if name == "LITERAL":
        return av == 32
    if name == "MAX_REPEAT" and av[0] >= 1 and len(av[2]) == 1:
        iop, iav = av[2][0]
        if str(iop) == "IN":
            return any(str(o) == "CATEGORY" and "SPACE" in str(a) for o, a in iav)
        return str(iop) == "LITERAL" and iav == 32
    return False


def _word_fragment(p: str) -> str:
    frag = ""
    for ch in p:
        if ch.isalnum() or ch in "'’":
            frag += ch
        else:
            break
    return frag


def pattern_anchors(pattern: re.Pattern[str]) -> tuple[list[str], list[str]] | None:
    """(word anchors, substring anchors): text that every match must contain.

    Word anchors: one of these word fragments starts a word of every match (at the
    beginning after ``\\b`` or after ``\\s+``), so a token starting with one of them
    triggers the pattern. Of all such required positions the most selective is
    used ("loose" rather than "is|are|was"). Substring anchors (emoji, ":)") are
    looked for in the lower-cased text. ``None``: unknown, always run the pattern.
    """
    try:
        tree = _sre_parse.parse(pattern.pattern, pattern.flags)
    except Exception:  # pragma: no cover - already compiled, should parse
        return None
    items = list(tree)
    boundary = bool(items) and str(items[0][0]) == "AT"
    best: tuple[tuple[int, int], list[str]] | None = None
    word_start = boundary
    for k in range(len(items)):
        op = str(items[k][0])
        if op == "AT":
            continue
        if word_start:
            res = _literal_prefixes(items[k:])
            if res is not None:
                frags = {_word_fragment(p.lower()) for p in res[0]}
                if frags and "" not in frags:
                    score = (min(len(f) for f in frags), -len(frags))
                    if best is None or score > best[0]:
                        best = (score, sorted(frags))
        optional = op in ("MAX_REPEAT", "MIN_REPEAT") and items[k][1][0] == 0
        word_start = _is_space_item(items[k]) or (optional and word_start)
    if best is not None:
        return best[1], []
    # no word anchor: the literal beginning of the match as a substring (emoji, ":)")
    res = _literal_prefixes(items)
    if res is None:
        return None
    subs = set()
    for p in res[0]:
        p = p.lower()
        if not p:
            return None
        subs.add(_word_fragment(p) if p[0].isalnum() else p)
    return [], sorted(subs)


def _start_literals(items) -> set[str] | None:  # noqa: ANN001 - sre parse tree
    """Literals one of which begins every match of the parsed items (``""``: any place), or None.
    An optional leading item ("(?:the\\s+)?last") contributes its own beginnings and those of the rest."""
    res = _literal_prefixes(items)
    if res is None:
        return None
    if "" not in res[0]:
        return res[0]
    k = 0
    while k < len(items) and str(items[k][0]) == "AT":
        k += 1
    if k == len(items) or str(items[k][0]) not in ("MAX_REPEAT", "MIN_REPEAT") or items[k][1][0] != 0:
        return res[0]
    inner = _start_literals(list(items[k][1][2]))
    rest = _start_literals(items[k + 1:])
    return None if inner is None or rest is None else inner | rest


def match_starts(pattern: re.Pattern[str]) -> tuple[str, ...] | None:
    """Lower-cased ASCII literals one of which begins every match of ``pattern`` (none a prefix of
    another, so at most one begins at a given place); ``None`` when the beginning is not such a
    finite literal set (a class, a non-ASCII character: case folding of those is not plain
    lower-casing)."""
    try:
        tree = _sre_parse.parse(pattern.pattern, pattern.flags)
    except Exception:  # pragma: no cover - already compiled, should parse
        return None
    found = _start_literals(list(tree))
    if found is None:
        return None
    prefixes = {p.lower() for p in found}
    if "" in prefixes or not all(p.isascii() for p in prefixes):
        return None
    minimal: list[str] = []
    for p in sorted(prefixes, key=len):
        if not any(p.startswith(q) for q in minimal):
            minimal.append(p)
    return tuple(minimal)


class LatinMatcher:
    def __init__(self, lang: str, stem, negation: tuple[str, ...], problems_only: bool) -> None:  # noqa: ANN001
        self.lang = lang
        self.stem = stem
        self.neg_suffix = "n't" in negation
        self.problems_only = problems_only
        self.single: dict[str, Entry] = {}
        self.phrases: dict[str, list[tuple[tuple[str, ...], Entry]]] = {}
        self.patterns: list[tuple[re.Pattern[str], str | None, float, bool, int]] = []  # ..., event kind
        self.pattern_starts: list[tuple[str, ...] | None] = []  # per pattern: match_starts()
        self.word_anchors: list[tuple[str, int]] = []
        # the same anchors by first character ("" for an empty one): a token checks only its own bucket
        self._anchors_by_initial: dict[str, list[tuple[str, int]]] = {}
        self.sub_anchors_ascii: list[tuple[str, int]] = []
        self.sub_anchors_other: list[tuple[str, int]] = []
        self.always: tuple[int, ...] = ()
        self.word_cache: dict[str, Tok | None] = {}
        self._phrase_index: dict[str, dict[str, list[tuple[tuple[str, ...], Entry]]] | None] = {}
        self.key_cache: dict[str, str] = {}
        self.comparative: frozenset[str] = frozenset()
        self.general: dict[str, Entry] = {}  # exact word form -> entry (general lexicon)

    # -- building
    def key(self, token: str) -> str:
        k = self.key_cache.get(token)
        if k is None:
            n = normalize(token)
            if self.neg_suffix and n.endswith("n't"):
                k = "n't"
            else:
                k = self.stem(n)
            if len(self.key_cache) >= WORD_CACHE_MAX:
                self.key_cache.clear()
            self.key_cache[token] = k
        return k

    def entry(self, term: str) -> Entry | None:
        toks = TOKEN_RE.findall(term.lower())
        if not toks:
            return None
        k = tuple(self.key(t) for t in toks)
        if len(k) == 1:
            e = self.single.get(k[0])
            if e is None:
                e = self.single[k[0]] = Entry(1)
            return e
        bucket = self.phrases.setdefault(k[0], [])
        for kk, e in bucket:
            if kk == k:
                return e
        e = Entry(len(k))
        bucket.append((k, e))
        bucket.sort(key=lambda ke: -len(ke[0]))
        return e

    def add_pattern(self, pat: re.Pattern[str], cat: str | None, value: float, problem: bool,
                    sentiment_only: bool = False) -> None:
        idx = len(self.patterns)
        self.patterns.append((pat, cat, value, problem, 3 if sentiment_only else 1))
        self.pattern_starts.append(match_starts(pat))
        anchors = pattern_anchors(pat)
        if anchors is None:
            self.always = self.always + (idx,)
            return
        words, subs = anchors
        self.word_anchors.extend((w, idx) for w in words)
        for w in words:
            self._anchors_by_initial.setdefault(w[:1], []).append((w, idx))
        for s in subs:
            (self.sub_anchors_ascii if s.isascii() else self.sub_anchors_other).append((s, idx))

    # -- lookup
    def _compound_head(self, tok: str) -> Entry | None:
        """An unknown hyphenated word takes the polarity of its last part ("super-easy",
        "rock-solid", "over-priced"), unless its first part negates ("non-responsive") or
        the last part has another role (an aspect, a cue)."""
        first, _, last = tok.rpartition("-")
        if not first or not last or first.split("-")[0] in _NEGATING_PREFIXES:
            return None
        e = self.single.get(self.key(last))
        if e is None and self.general:
            e = self.general.get(normalize(last))
        if e is None or not e.polar or e.aspects or e.ctx or e.neg or e.brk or e.intens or e.wish:
            return None
        return e

    def _triggers(self, tok: str) -> tuple[int, ...]:
        """Indices of the patterns with a word anchor ``tok`` starts with, ascending (as a scan of
        :attr:`word_anchors` in order would list them)."""
        by_initial = self._anchors_by_initial
        found = [i for w, i in by_initial.get(tok[:1], ()) if tok.startswith(w)]
        if tok and "" in by_initial:
            found.extend(i for _, i in by_initial[""])
            found.sort()
        return tuple(found)

    def _phrases_by_second(self, key: str) -> dict[str, list[tuple[tuple[str, ...], Entry]]] | None:
        """The phrases starting with ``key`` grouped by their second key, each group in the order
        of :attr:`phrases` (longest first); None when no phrase starts with ``key``."""
        index = self._phrase_index.get(key, _MISS)
        if index is _MISS:
            index = None
            for keys, e in self.phrases.get(key, ()):
                if index is None:
                    index = {}
                index.setdefault(keys[1], []).append((keys, e))
            self._phrase_index[key] = index
        return index  # type: ignore[return-value]

    def lookup(self, tok: str) -> Tok | None:
        """Facts about a token (cached); None when it plays no part."""
        if tok in PUNCT:
            info = _PUNCT_TOK
        else:
            key = self.key(tok)
            entry = self.single.get(key)
            if entry is None and self.general:
                entry = self.general.get(normalize(tok))
            if entry is None and "-" in tok:
                entry = self._compound_head(tok)
            phrases = self._phrases_by_second(key)
            trig = self._triggers(tok)
            info = Tok(key, entry, phrases, trig) if (entry or phrases or trig) else None
        if len(self.word_cache) >= WORD_CACHE_MAX:
            self.word_cache.clear()
        self.word_cache[tok] = info
        return info


def build_matcher(tax: Taxonomy, lang: str) -> LatinMatcher | None:
    lex = tax.lexicon(lang)
    if lex is None:
        return None
    m = LatinMatcher(lang, _stemmer(lex.stemmer), tuple(lex.negation), lex.fallback == "problems")
    m.comparative = frozenset(t.lower() for t in lex.comparative)

    def add(term: str, fn) -> None:  # noqa: ANN001
        e = m.entry(term)
        if e is not None:
            fn(e)

    def setattr_(name, value):  # noqa: ANN001, ANN202
        return lambda e: setattr(e, name, value)

    for t in lex.negation:
        add(t, setattr_("neg", True))
    for t in lex.lack:
        add(t, lambda e: (setattr(e, "neg", True), setattr(e, "lack", True)))
    for t, w in lex.intensifiers.items():
        add(t, lambda e, w=w: setattr(e, "intens", max(e.intens, w)))
    for t in lex.excess:
        add(t, setattr_("excess", True))
    for t in lex.clause_breaks:
        add(t, setattr_("brk", True))
    for t in lex.failure_verbs:
        add(t, setattr_("failure", True))
    for t in lex.wish:
        add(t, setattr_("wish", True))
    for t in lex.conditional:
        add(t, setattr_("cond", True))
    for t in lex.contrast:
        add(t, lambda e: (setattr(e, "brk", True), setattr(e, "contrast", True)))
    for t, w in lex.positive.items():
        add(t, lambda e, w=w: e.polar.append((None, w, False)))
    for t, w in lex.negative.items():
        add(t, lambda e, w=w: e.polar.append((None, -w, False)))
    for t, w in lex.problem.items():
        add(t, lambda e, w=w: e.polar.append((None, -w, True)))
    for p, w in lex.positive_patterns:
        m.add_pattern(p, None, w, False)
    for p, w in lex.negative_patterns:
        m.add_pattern(p, None, -w, False)
    for cat in tax.categories:
        cid = cat.id
        for t in cat.role_terms("aspects", lang):
            add(t, lambda e, c=cid: e.aspects.append(c))
        for t, w in cat.role_terms("negative", lang).items():
            add(t, lambda e, c=cid, w=w: e.polar.append((c, -w, True)))
        for t, w in cat.role_terms("positive", lang).items():
            add(t, lambda e, c=cid, w=w: e.polar.append((c, w, False)))
        for t, w in cat.role_terms("context", lang).items():
            add(t, lambda e, c=cid, w=w: e.ctx.append((c, w)))
        for p, w in cat.patterns.get(lang, ()):
            m.add_pattern(p, cid, -w, True)
    def sentiment_only(e: Entry, w: float) -> None:
        if not e.polar:  # a term with its own polarity elsewhere keeps that one
            e.general = True
            e.polar.append((None, w, False))

    for t, w in lex.sentiment_only.items():
        add(t, lambda e, w=w: sentiment_only(e, w))
    for p, w in lex.sentiment_only_patterns:
        m.add_pattern(p, None, w, False, sentiment_only=True)
    if lex.general is not None:
        add_general_lexicon(m, lex.general)
    for e in m.single.values():
        e.finish()
    for bucket in m.phrases.values():
        for _, e in bucket:
            e.finish()
    return m


BOOSTER_UP = 1.3    # a degree adverb of the general lexicon ("remarkably") ...
BOOSTER_DOWN = 0.7  # ... or a dampener ("marginally"), as an intensifier multiplier


@lru_cache(maxsize=4)
def general_lexicon_words(source: str) -> tuple[dict[str, float], dict[str, float]]:
    """(word -> valence, degree adverb -> signed increment) of a general-purpose lexicon.

    ``vader``: the human-rated valence lexicon of VADER (Hutto & Gilbert 2014, MIT licence,
    PyPI package ``vaderSentiment``): about 7,200 English words rated -4..4 by ten raters
    each, read from the installed package's ``vader_lexicon.txt``, plus its booster words.
    Emoticons and other non-word entries are skipped. Empty when the package is missing.
    """
    if source != "vader":
        raise ValueError(f"unknown general lexicon source {source!r} (known: vader)")
    try:
        from importlib import resources

        raw = (resources.files("vaderSentiment") / "vader_lexicon.txt").read_text(encoding="utf-8")
        from vaderSentiment.vaderSentiment import BOOSTER_DICT  # type: ignore[import-not-found]
    except (ImportError, OSError):  # pragma: no cover - the package is a dependency
        return {}, {}
    words: dict[str, float] = {}
    for line in raw.splitlines():
        parts = line.split("\t")
        if len(parts) < 2:
            continue
        w = parts[0].strip().lower()
        if not re.fullmatch(r"[a-z]+(?:['\-][a-z]+)*", w) or w in words:
            continue
        try:
            words[w] = float(parts[1])
        except ValueError:
            continue
    boosters = {str(k).lower(): float(v) for k, v in BOOSTER_DICT.items()}
    return words, boosters


def add_general_lexicon(m: LatinMatcher, gen) -> None:  # noqa: ANN001 - taxonomy.GeneralLexicon
    """Give the words of the general lexicon that have no role yet a sentiment-only polarity.

    The general lexicon lists word forms ("love", "loved", "loving" rated apart), so its
    words are matched by their exact (lower-cased, accent-free) form, not by stem: a stem
    would merge unrelated words ("made" / "mad", "huge" / "hug"). A token whose stem has a
    role in the language's own lists never takes a general-lexicon value.
    """
    words, boosters = general_lexicon_words(gen.source)
    exclude = {normalize(t) for t in gen.exclude}
    general: dict[str, Entry] = {}
    if gen.boosters:
        for w, inc in boosters.items():
            if " " in w or w in exclude or m.key(w) in m.single:
                continue
            e = Entry(1)
            e.intens = BOOSTER_UP if inc > 0 else BOOSTER_DOWN
            general[w] = e
    for w, val in words.items():
        if len(w) < 2 or abs(val) < gen.min_valence or val == 0 or w in exclude or w in general:
            continue
        if m.key(w) in m.single:
            continue
        e = Entry(1)
        e.general = True
        e.polar.append((None, val * gen.scale, False))
        general[w] = e
    m.general = general


def matcher(tax: Taxonomy, lang: str) -> LatinMatcher | None:
    return tax.compiled(f"latin:{lang}", lambda t: build_matcher(t, lang))


# ----------------------------------------------------------------------------- analysis

def tokenize(text: str) -> tuple[str, list[str]]:
    """(lower-cased text, its tokens); the lower-cased text keeps the offsets of ``text``."""
    low = text.lower()
    if low.isascii():
        return low, ASCII_TOKEN_RE.findall(low)
    if len(low) != len(text):  # rare: a character whose lower case is longer (İ)
        low = "".join(c if len(c.lower()) != 1 else c.lower() for c in text)
    return low, TOKEN_RE.findall(low)


def _flip(v: float) -> float:
    return v * (FLIP_POSITIVE if v > 0 else FLIP_NEGATIVE)


def analyse(
    text: str,
    tax: Taxonomy,
    lang: str,
    *,
    tokens: tuple[str, list[str]] | None = None,
) -> Aggregate:
    """Pain strengths and sentiment totals for the Latin-script words of ``text``.

    ``tokens``: the result of :func:`tokenize` when the caller already has it.
    Event spans are token index ranges (``a``, ``b``) or, for regex hits, char
    offsets (``-1 - start``, ``end``); they become char offsets only for the
    pain points found.
    """
    out = Aggregate()
    m = matcher(tax, lang)
    if m is None or not text:
        return out
    low, toks = tokens if tokens is not None else tokenize(text)
    infos = _token_infos(m, toks)
    hits = [i for i, x in enumerate(infos) if x is not None and not x.punct]
    # patterns that may match: anchored by a token, by a substring, or always
    trig = _anchored_patterns(m, infos, hits, low)
    if not hits and not trig:
        return out  # quick exit: nothing in the lexicon
    if hits and m.always:
        trig.update(m.always)
    offsets = _LazyOffsets(low, toks)
    # events: (pos, kind, category, value, problem, a, b); kind 0 aspect, 1 polar, 2 context,
    # 3 polar from the general lexicon (sentiment only)
    pattern_events, covered = _pattern_events(m, trig, text, offsets)
    walk = _TokenWalk(m, toks, covered)
    walk.run(infos)
    events = walk.events
    if pattern_events:
        if walk.neg_cues:
            pattern_events = [_negate_pattern(ev, walk.neg_cues, walk.clause_of_break) for ev in pattern_events]
        events.extend(pattern_events)
    if not events:
        return out
    events.sort(key=_pos)
    if not events:
        return out
    _score(out, events, walk.clause_of_break, walk.sentence_ends, m.problems_only, walk.contrast_before)
    if out.pains or out.unattributed:
        _resolve_spans(out, offsets.get())
    return out


def _token_infos(m: LatinMatcher, toks: list[str]) -> list[Tok | None]:
    """The :class:`Tok` of every token (``None``: no part), from the matcher's cache or looked up."""
    get = m.word_cache.get
    miss = _MISS
    infos = [get(t, miss) for t in toks]
    if miss in infos:
        lookup = m.lookup
        for i, x in enumerate(infos):
            if x is miss:
                infos[i] = lookup(toks[i])
    return infos


def _anchored_patterns(m: LatinMatcher, infos: list[Tok | None], hits: list[int], low: str) -> set[int]:
    """Indices of the patterns whose anchor occurs: a word anchor starting one of the ``hits``
    tokens, or a substring anchor in the lower-cased text ``low``."""
    trig: set[int] = set()
    for i in hits:
        if infos[i].trig:  # type: ignore[union-attr]
            trig.update(infos[i].trig)  # type: ignore[union-attr]
    for s, idx in m.sub_anchors_ascii:
        if s in low:
            trig.add(idx)
    if m.sub_anchors_other and not low.isascii():
        for s, idx in m.sub_anchors_other:
            if s in low:
                trig.add(idx)
    return trig


class _LazyOffsets:
    """Character spans of the tokens of a lower-cased text, computed on first use."""

    __slots__ = ("low", "toks", "spans", "starts", "ends")

    def __init__(self, low: str, toks: list[str]) -> None:
        """``toks``: :func:`tokenize`'s tokens of ``low``."""
        self.low = low
        self.toks = toks
        self.spans: list[tuple[int, int]] | None = None
        self.starts: list[int] = []
        self.ends: list[int] = []

    def get(self) -> list[tuple[int, int]]:
        """The (start, end) of every token of the text (also kept as :attr:`starts`, :attr:`ends`).

        Found by ``str.find`` from the end of the previous token rather than a second regex pass:
        the tokenizer starts a token at every character that can begin one, so the characters it
        skipped cannot begin the next token's text and the first occurrence is the token."""
        if self.spans is None:
            find = self.low.find
            starts, ends = self.starts, self.ends
            pos = 0
            for t in self.toks:
                start = find(t, pos)
                pos = start + len(t)
                starts.append(start)
                ends.append(pos)
            self.spans = list(zip(starts, ends))
        return self.spans


def _pattern_events(m: LatinMatcher, trig: set[int], text: str,
                    offsets: _LazyOffsets) -> tuple[list[tuple], set[int]]:
    """Events of the hits of the triggered patterns (spans as char offsets ``-1 - start``, ``end``)
    and the token indices the hits cover (those tokens are skipped by the word walk)."""
    covered: set[int] = set()
    pattern_events: list[tuple] = []
    if not trig:
        return pattern_events, covered
    offs = None
    starts: list[int] = []
    ends: list[int] = []
    ptext = text.replace("’", "'") if "’" in text else text  # same length: offsets hold
    # for ASCII ptext case folding is ASCII lower-casing, so its lower case finds the starts (_spans_at)
    low = None
    if ptext.isascii():
        low = offsets.low if ptext is text else ptext.lower()
    for idx in sorted(trig):
        pat, cat, val, prob, kind = m.patterns[idx]
        begins = m.pattern_starts[idx]
        for s, e in (_spans_at(pat, begins, ptext, low) if begins is not None and low is not None
                     else [mt.span() for mt in pat.finditer(ptext)]):
            if e <= s:
                continue
            if offs is None:
                offs = offsets.get()
                ends, starts = offsets.ends, offsets.starts
            lo = bisect_right(ends, s)
            hi = bisect_left(starts, e)
            covered.update(range(lo, hi))
            ti = lo if hi > lo else max(0, lo - 1)
            pattern_events.append((ti, kind, cat, val, prob, -1 - s, e))
    return pattern_events, covered


def _spans_at(pat: re.Pattern[str], begins: tuple[str, ...], text: str, low: str) -> list[tuple[int, int]]:
    """The spans ``pat.finditer(text)`` yields, found by trying ``pat.match`` only where one of
    ``begins`` (:func:`match_starts`) occurs in ``low`` (ASCII ``text`` lower-cased): no match
    starts elsewhere, and the sre scan of every other position is what a search costs."""
    found: list[int] = []
    for b in begins:
        i = low.find(b)
        while i >= 0:
            found.append(i)
            i = low.find(b, i + 1)
    if not found:
        return []
    found.sort()
    spans: list[tuple[int, int]] = []
    end = 0
    for i in found:
        if i < end:  # finditer resumes after the previous hit
            continue
        mt = pat.match(text, i)  # same lookbehind and \b context as a search reaching i
        if mt is not None:
            spans.append(mt.span())
            end = mt.end()
    return spans


class _TokenWalk:
    """Left-to-right walk over the lexicon tokens of a text: cue scopes (negation, lack,
    intensifier, "too", wish, conditional) and the events of its words.

    Results: ``events`` (token spans), ``clause_of_break`` (token indices where a clause
    ends), ``sentence_ends``, ``neg_cues`` (last token of each negation cue) and
    ``contrast_before`` (clauses that end with a contrast word).
    """

    __slots__ = ("m", "toks", "covered", "n", "events", "clause_of_break", "sentence_ends", "neg_cues",
                 "contrast_before", "skip_to", "neg_until", "neg_from", "neg_tok", "lack_until", "int_until",
                 "intens", "excess_at", "cond", "wish_until")

    def __init__(self, m: LatinMatcher, toks: list[str], covered: set[int]) -> None:
        self.m = m
        self.toks = toks
        self.covered = covered
        self.n = len(toks)
        self.events: list[tuple] = []
        self.clause_of_break: list[int] = []
        self.sentence_ends: list[int] = []
        self.neg_cues: list[int] = []
        self.contrast_before: set[int] = set()
        self.skip_to = 0
        self.neg_until = self.neg_from = self.neg_tok = self.lack_until = self.int_until = -1
        self.intens = 1.0
        self.excess_at = -1
        self.cond = False
        self.wish_until = -1

    def run(self, infos: list[Tok | None]) -> None:
        """Walk the tokens that play a part (``infos`` not None), skipping regex-covered ones:
        punctuation and clause-break words end a clause, cues open a scope, other words
        become events (:meth:`_word`)."""
        covered, toks = self.covered, self.toks
        for i in [i for i, x in enumerate(infos) if x is not None]:
            if i < self.skip_to or i in covered:
                continue
            info: Tok = infos[i]  # type: ignore[assignment]
            if self.excess_at >= 0:
                self._flush_excess(i)
            if info.punct:
                self._break_clause(i)
                if toks[i] in SENTENCE_END:
                    self.sentence_ends.append(i)
                continue
            entry, b = self._entry_at(i, info) if info.phrases else (info.entry, i)
            if entry is None:
                continue
            self.skip_to = b + 1
            if entry.brk and not (entry.polar or entry.aspects or entry.ctx):
                if entry.contrast:
                    self.contrast_before.add(len(self.clause_of_break))
                self._break_clause(i)
                continue
            if entry.cond:
                self.cond = True
                continue
            consumed_neg = False
            if entry.neg:
                self.neg_until, self.neg_from, self.neg_tok = b + NEGATION_SCOPE, i, b
                self.neg_cues.append(b)
                if entry.lack:
                    self.lack_until = b + LACK_SCOPE
                consumed_neg = True
            elif entry.intens:
                self.intens, self.int_until = entry.intens, b + INTENSIFIER_SCOPE
            elif entry.excess:
                self.excess_at = b + 1
                continue
            elif entry.wish:
                self.events.append((i, 1, None, WISH_VALUE, False, i, b))
                self.wish_until = b + NEGATION_SCOPE
            self._word(i, b, entry, consumed_neg)
        ex = self.excess_at
        if ex >= 0 and ex < self.n and ex not in covered and toks[ex][0].isalpha():
            self.events.append((ex, 1, None, EXCESS_VALUE, False, ex, ex))

    def _flush_excess(self, i: int) -> None:
        """A "too" whose next token was no polar word: that word is negative on its own ("too small")."""
        ex = self.excess_at
        if ex >= 0 and ex < i:
            if ex not in self.covered and self.toks[ex][0].isalpha():
                self.events.append((ex, 1, None, EXCESS_VALUE, False, ex, ex))
            self.excess_at = -1

    def _break_clause(self, i: int) -> None:
        """End the clause at token ``i``: every cue scope closes."""
        self.clause_of_break.append(i)
        self.neg_until = self.lack_until = self.int_until = self.excess_at = self.wish_until = -1
        self.cond = False

    def _entry_at(self, i: int, info: Tok) -> tuple[Entry | None, int]:
        """The entry starting at token ``i`` (the longest matching phrase, else the word's own)
        and the index of its last token."""
        toks, covered, key, n = self.toks, self.covered, self.m.key, self.n
        nxt = i + 1
        # every phrase has a second word: only those whose second key is the next token's can match
        if nxt >= n or nxt in covered or toks[nxt] in PUNCT:
            return info.entry, i
        for keys, e in info.phrases.get(key(toks[nxt]), ()):  # type: ignore[union-attr]
            L = len(keys)
            if i + L > n:
                continue
            ok = True
            for j in range(2, L):
                if (i + j) in covered or toks[i + j] in PUNCT or key(toks[i + j]) != keys[j]:
                    ok = False
                    break
            if ok:
                return e, i + L - 1
        return info.entry, i

    def _word(self, i: int, b: int, entry: Entry, consumed_neg: bool) -> None:
        """Events of the word (or phrase) at tokens ``i``..``b`` under the open cue scopes."""
        negated = not consumed_neg and i <= self.neg_until
        polar = entry.polar
        polar_done = False
        if negated and entry.failure and i - self.neg_tok <= FAILURE_SCOPE and not any(v < 0 for _, v, _ in polar):
            # "doesn't work": the failure wins over the word's own (mild) polarity
            value = FAILURE_VALUE * (CONDITIONAL_FACTOR if self.cond else 1.0)
            self.events.append((i, 1, None, value, True, self.neg_from, b))
            polar_done = True
            polar = []
        if entry.aspects:
            for c in entry.aspects:
                self.events.append((i, 0, c, 0.0, False, i, b))
            if not polar and i <= self.lack_until and not consumed_neg:
                self.events.append((i, 1, entry.aspects[0], LACK_VALUE, True, self.neg_from, b))
                self.lack_until = -1
        if polar:
            self._polar_events(i, b, entry, polar, negated)
            polar_done = True
        elif self.excess_at == i and entry.aspects:
            self.events.append((i, 1, None, EXCESS_VALUE, False, i, b))
            polar_done = True
        for c, w in entry.ctx:
            w = w * (self.intens if i <= self.int_until else 1.0)
            a0 = i
            if negated:
                w, a0 = _flip(w), self.neg_from
            self.events.append((i, 2, c, w, False, a0, b))
        if self.excess_at == i:
            self.excess_at = -1
        if polar_done:
            self.int_until = -1

    def _polar_events(self, i: int, b: int, entry: Entry, polar: list[tuple[str | None, float, bool]],
                      negated: bool) -> None:
        """One polar event per category of the word, scaled by intensifier, comparison, "too",
        negation, condition and wish."""
        boost = self.intens if i <= self.int_until else 1.0
        comparative = self.m.comparative
        if comparative and not comparative.isdisjoint(self.toks[b + 1 : b + 1 + COMPARATIVE_SCOPE]):
            boost *= COMPARATIVE_FACTOR
        ex = self.excess_at == i
        for c, v, prob in polar:
            v *= boost
            a0 = i
            if ex and v < 0:
                v *= EXCESS_BOOST
            if negated:
                if v < 0:
                    self.neg_until = max(self.neg_until, b + NEG_COORDINATION)
                v = v * FLIP_PROBLEM if (prob and v < 0) else _flip(v)
                a0 = self.neg_from
                prob = prob and v < 0
            if self.cond:
                v *= CONDITIONAL_FACTOR
            if v > 0 and i <= self.wish_until and not entry.wish:
                v = 0.0  # "could be more durable": the wished-for quality is missing
            self.events.append((i, 3 if entry.general else 1, c, v, prob, a0, b))


def _negate_pattern(ev: tuple, neg_cues: list[int], breaks: list[int]) -> tuple:
    """A regex hit right after a negation cue of the same clause is flipped ("doesn't run hot")."""
    ti = ev[0]
    k = bisect_left(neg_cues, ti) - 1
    if k < 0 or ti - neg_cues[k] > NEGATION_SCOPE:
        return ev
    if bisect_left(breaks, neg_cues[k]) != bisect_left(breaks, ti):
        return ev
    return (ti, ev[1], ev[2], _flip(ev[3]), False, ev[5], ev[6])


def _pos(ev: tuple) -> int:
    return ev[0]


@dataclass(slots=True)
class _Tally:
    """Running totals of :func:`_score`: sentiment sums (own and general lexicon) and the
    pain candidates (category or None, clause total, spans, sentence)."""

    pos_sum: float = 0.0
    neg_sum: float = 0.0
    gen_pos: float = 0.0  # general-lexicon evidence, weighed after the clauses (see _score)
    gen_neg: float = 0.0
    candidates: list[tuple[str | None, float, list, int]] = field(default_factory=list)


_ANY_CATEGORY = object()  # _nearest_anchor: no category filter


def _nearest_anchor(anchors: list[tuple[int, str]], pos: int, only: object = _ANY_CATEGORY) -> str | None:
    """Category of the anchor nearest to token ``pos`` (the first one on ties), among the
    anchors of category ``only`` when given; None when there is none."""
    best, best_d = None, 1 << 30
    for p2, c2 in anchors:
        d = abs(p2 - pos)
        if d < best_d and (only is _ANY_CATEGORY or c2 == only):
            best, best_d = c2, d
    return best


def _clause_groups(events: list[tuple], breaks: list[int]) -> list[list[tuple]]:
    """Events (sorted by token position) grouped by clause, in order."""
    groups: list[list[tuple]] = []
    cur: list[tuple] = []
    cur_clause = -1
    for ev in events:
        c = bisect_left(breaks, ev[0]) if breaks else 0
        if c != cur_clause:
            if cur:
                groups.append(cur)
            cur, cur_clause = [], c
        cur.append(ev)
    if cur:
        groups.append(cur)
    return groups


def _sentence_anchors(events: list[tuple], sentence_ends: list[int]) -> dict[int, list[tuple[int, str]]]:
    """Sentence index -> (position, category) of its events that name a category (no context)."""
    sent_anchors: dict[int, list[tuple[int, str]]] = {}
    for ev in events:
        if ev[2] is not None and ev[1] != 2:
            sent = bisect_left(sentence_ends, ev[0]) if sentence_ends else 0
            sent_anchors.setdefault(sent, []).append((ev[0], ev[2]))
    return sent_anchors


def _score_clause(tally: _Tally, group: list[tuple], anchors: list[tuple[int, str]], sw: float, sent: int,
                  problems_only: bool) -> None:
    """Add one clause's sentiment (weighted ``sw``) to ``tally`` and its clearly negative
    categories (free polar words attached to the nearest anchor) as pain candidates."""
    totals: dict[str | None, float] = {}
    spans: dict[str | None, list[tuple[int, int]]] = {}
    problem_total = 0.0
    for pos, kind, cat, val, prob, a, b in group:
        if kind == 0:
            spans.setdefault(cat, []).append((a, b))
            continue
        if kind == 3:  # general lexicon: sentiment only
            if val > 0:
                tally.gen_pos += val * sw
            else:
                tally.gen_neg -= val * sw
            continue
        if kind == 2:
            if _nearest_anchor(anchors, pos, cat) is None:
                continue
        elif cat is None and anchors:
            cat = _nearest_anchor(anchors, pos)
        if val > 0:
            tally.pos_sum += val * sw
        else:
            tally.neg_sum -= val * sw
        totals[cat] = totals.get(cat, 0.0) + val
        spans.setdefault(cat, []).append((a, b))
        if cat is None and prob:
            problem_total += val
    for cid, total in totals.items():
        if total > -PAIN_THRESHOLD:
            continue
        if cid is None and problems_only:
            if problem_total > -PAIN_THRESHOLD:
                continue
            total = max(total, problem_total)
        tally.candidates.append((cid, total, spans[cid], sent))


def _score(out: Aggregate, events: list[tuple], breaks: list[int], sentence_ends: list[int],
           problems_only: bool, contrast_before: set[int] = frozenset()) -> None:  # type: ignore[assignment]
    """Clause-level scoring (same rules as :func:`.scoring.aggregate`)."""
    groups = _clause_groups(events, breaks)
    tally = _Tally()
    sent_anchors: dict[int, list[tuple[int, str]]] = {}
    if SENTENCE_ATTACH and len(groups) > 1:
        sent_anchors = _sentence_anchors(events, sentence_ends)
    for group in groups:
        sw = contrast_weight(bisect_left(breaks, group[0][0]), contrast_before) if contrast_before else 1.0
        sent = bisect_left(sentence_ends, group[0][0]) if sentence_ends else 0
        anchors = [(ev[0], ev[2]) for ev in group if ev[2] is not None and ev[1] != 2]
        if not anchors and sent_anchors:
            anchors = [(p2, c2) for p2, c2 in sent_anchors.get(sent, ())
                       if abs(p2 - group[0][0]) <= SENTENCE_ATTACH]
        _score_clause(tally, group, anchors, sw, sent, problems_only)
    for cid, total, sp, sent in tally.candidates:
        if cid is None:
            out.unattributed.append((-total, sp))
        else:
            out.pains[cid].append((-total, sp))
    pos_sum, neg_sum = tally.pos_sum, tally.neg_sum
    if tally.gen_pos or tally.gen_neg:
        # the general lexicon fills gaps: at full weight in a text where the language's own
        # lists found nothing, damped where they did (they know the domain's senses better)
        gw = 1.0 if pos_sum + neg_sum == 0 else GENERAL_WITH_OWN
        pos_sum += tally.gen_pos * gw
        neg_sum += tally.gen_neg * gw
    out.positive += pos_sum
    out.negative += neg_sum


def _resolve_spans(out: Aggregate, offs: list[tuple[int, int]]) -> None:
    def conv(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
        res = []
        for a, b in spans:
            if a < 0:  # regex hit: char offsets
                res.append((-1 - a, b))
            elif b < len(offs):
                res.append((offs[a][0], offs[b][1]))
        return res

    for cid, items in out.pains.items():
        out.pains[cid] = [(s, conv(sp)) for s, sp in items]
    out.unattributed = [(s, conv(sp)) for s, sp in out.unattributed]
