"""Fast language identification: script counts, then stop words for Latin text.

No models: a character pass decides the dominant script (Hangul -> ``ko``,
kana -> ``ja``, Han -> ``zh``, Cyrillic -> ``ru``, ...). Latin-script text is
told apart by stop-word hits and a few diacritics (``en``, ``pt``, ``es``,
``fr``, ``de``). Text without letters is ``und``.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from dataclasses import dataclass

UNDETERMINED = "und"

_STOPWORDS: dict[str, frozenset[str]] = {
    "en": frozenset(
        "the and is was it to of a an in for this that with not my i you on are be have has had "
        "but they we at so very just from or would will can if all its it's me were been do does "
        "did what when there their than too get got no one out about after item product as good great "
        "love like very thanks works work easy nice new use well bought buy".split()
    ),
    "pt": frozenset(
        "o a os as de do da dos das e é em um uma não que para com por no na nos nas mais muito "
        "foi mas ao se eu meu minha produto chegou entrega prazo bom ótimo até já ainda pedido "
        "recebi veio está estou são isso esse essa também compra loja".split()
    ),
    "es": frozenset(
        "el la los las de del y es en un una no que para con por lo se mi muy pero más fue "
        "producto llegó entrega está estoy son esto este esta también compra tienda".split()
    ),
    "fr": frozenset(
        "le la les de des du et est en un une ne pas que pour avec par je mon ma très mais "
        "plus été produit livraison il elle sont ce cette aussi".split()
    ),
    "de": frozenset(
        "der die das und ist in ein eine nicht zu mit für von ich mein sehr aber auch war "
        "produkt lieferung sind es den dem wurde".split()
    ),
}
_DIACRITIC_HINTS = {
    "pt": "ãõçâêô",
    "es": "ñ¿¡",
    "fr": "èùûœë",
    "de": "äöüß",
}
_WORD_RE = re.compile(r"[^\W\d_]+(?:['’][^\W\d_]+)*")
HANGUL = re.compile("[\uac00-\ud7a3\u1100-\u11ff\u3130-\u318f\ua960-\ua97f]")  # the "hangul" of _script


def _script(ch: str) -> str | None:
    o = ord(ch)
    if 0xAC00 <= o <= 0xD7A3 or 0x1100 <= o <= 0x11FF or 0x3130 <= o <= 0x318F or 0xA960 <= o <= 0xA97F:
        return "hangul"
    if 0x3040 <= o <= 0x30FF:
        return "kana"
    if 0x4E00 <= o <= 0x9FFF or 0x3400 <= o <= 0x4DBF:
        return "han"
    if not ch.isalpha():
        return None
    if o < 0x250:
        return "latin"
    if 0x0400 <= o <= 0x04FF:
        return "cyrillic"
    if 0x0600 <= o <= 0x06FF:
        return "arabic"
    if 0x0E00 <= o <= 0x0E7F:
        return "thai"
    if 0x0370 <= o <= 0x03FF:
        return "greek"
    if 0x0590 <= o <= 0x05FF:
        return "hebrew"
    if 0x0900 <= o <= 0x097F:
        return "devanagari"
    name = unicodedata.name(ch, "")
    return "latin" if "LATIN" in name else "other"


_SCRIPT_LANG = {
    "hangul": "ko",
    "kana": "ja",
    "cyrillic": "ru",
    "arabic": "ar",
    "thai": "th",
    "greek": "el",
    "hebrew": "he",
    "devanagari": "hi",
}


_SCRIPT_WEIGHT = {"hangul": 2.0, "han": 2.0, "kana": 2.0}


@dataclass(frozen=True)
class ScriptProfile:
    counts: dict[str, int]

    @property
    def letters(self) -> int:
        return sum(self.counts.values())

    @property
    def dominant(self) -> str | None:
        """Script with the most weight; a syllabic character (Hangul, Han, kana)
        weighs as much as two Latin letters, roughly equal information."""
        if not self.counts:
            return None
        return max(self.counts.items(), key=lambda kv: kv[1] * _SCRIPT_WEIGHT.get(kv[0], 1.0))[0]

    def share(self, script: str) -> float:
        n = self.letters
        return self.counts.get(script, 0) / n if n else 0.0


def script_profile(text: str) -> ScriptProfile:
    c: Counter[str] = Counter()
    for ch in text:
        s = _script(ch)
        if s is not None:
            c[s] += 1
    return ScriptProfile(dict(c))


def latin_language(text: str, default: str = "en") -> str:
    """Pick en/pt/es/fr/de for Latin-script text by stop words and diacritics."""
    words = [w.lower() for w in _WORD_RE.findall(text) if _script(w[0]) == "latin"]
    if not words:
        return default
    scores = {lang: 0.0 for lang in _STOPWORDS}
    for w in words:
        for lang, sw in _STOPWORDS.items():
            if w in sw:
                scores[lang] += 1.0
    lowered = text.lower()
    for lang, chars in _DIACRITIC_HINTS.items():
        scores[lang] += 0.5 * sum(lowered.count(ch) for ch in chars)
    best = max(scores.items(), key=lambda kv: kv[1])
    if best[1] <= 0:
        return default
    # ties: prefer English, then Portuguese (the marketplaces we serve)
    for lang in ("en", "pt"):
        if scores[lang] == best[1]:
            return lang
    return best[0]


_WORD_LANGS: dict[str, tuple[str, ...]] = {}
for _lang, _words in _STOPWORDS.items():
    for _w in _words:
        _WORD_LANGS[_w] = _WORD_LANGS.get(_w, ()) + (_lang,)
_LANG_ORDER = ("en", "pt", "es", "fr", "de")  # ties: the earlier wins


def latin_language_from_tokens(tokens: list[str], default: str = "en") -> str:
    """Fast path for ASCII text already tokenized and lower-cased: stop-word votes
    (distinct words), ties to the earlier of en, pt, es, fr, de. ``und`` without letters."""
    words = set(tokens)
    best, best_n = None, 0
    for lang in _LANG_ORDER:
        n = len(words & _STOPWORDS[lang])
        if n > best_n:
            best, best_n = lang, n
    if best is not None:
        return best
    for t in words:
        if t[0].isalpha():
            return default
    return UNDETERMINED


def detect_language(text: str | None, profile: ScriptProfile | None = None) -> str:
    """ISO 639-1 code of the dominant language, or ``und`` when there are no letters."""
    if not text:
        return UNDETERMINED
    prof = profile if profile is not None else script_profile(text)
    dom = prof.dominant
    if dom is None:
        return UNDETERMINED
    if dom == "han":
        # Japanese mixes kana into Han text; Korean may contain hanja
        if prof.counts.get("kana", 0) > 0:
            return "ja"
        if prof.counts.get("hangul", 0) > 0:
            return "ko"
        return "zh"
    if dom == "latin":
        return latin_language(text)
    return _SCRIPT_LANG.get(dom, UNDETERMINED)


def languages_present(text: str, dominant: str, profile: ScriptProfile | None = None) -> list[str]:
    """Languages worth analysing in ``text``: the dominant one first, then any
    second script with real content (mixed Korean/English reviews)."""
    langs = [dominant]
    prof = profile if profile is not None else script_profile(text)
    if dominant != "ko" and prof.counts.get("hangul", 0) >= 2:
        langs.append("ko")
    if dominant == "ko":
        latin_words = [w for w in _WORD_RE.findall(text) if _script(w[0]) == "latin" and len(w) > 1]
        if len(latin_words) >= 2:
            langs.append(latin_language(" ".join(latin_words)))
    return langs
