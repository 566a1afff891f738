"""Pain-point taxonomy as data: YAML file -> :class:`Taxonomy`.

A taxonomy file holds a version, categories (id, label, suggested_action and
per-language term lists) and, per language, the sentiment lexicons the
analysers need (negation cues, intensifiers, positive/negative words).
Nothing in the code names a category id, so a category added to a file works
end to end. See ``pipeline/taxonomies/default.yaml`` for the documented format.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..yamlfile import read_mapping

TAXONOMY_DIR = Path(__file__).resolve().parent.parent / "taxonomies"
DEFAULT_TAXONOMY_PATH = TAXONOMY_DIR / "default.yaml"

_ID_RE = re.compile(r"^[a-z][a-z0-9_]*$")

# Per-category term roles (keys under each category in the YAML file).
#   aspects   neutral words naming the aspect; pain when the words around them are negative
#   negative  words that are a complaint about this aspect on their own ("overpriced")
#   positive  praise of this aspect on their own; negated they are a pain ("not cheap")
#   context   words whose polarity depends on this aspect being near ("price is high")
#   patterns  regular expressions on the raw text; a match is a complaint about the aspect
CATEGORY_TERM_ROLES = ("aspects", "negative", "positive", "context")


class TaxonomyError(ValueError):
    """The taxonomy file is malformed."""


@dataclass(frozen=True)
class Category:
    id: str
    label: str
    suggested_action: str
    description: str = ""
    # role -> language -> {term: weight}; weights are magnitudes (> 0) except
    # for "context", where the sign carries the polarity.
    terms: Mapping[str, Mapping[str, Mapping[str, float]]] = field(default_factory=dict)
    patterns: Mapping[str, tuple[tuple[re.Pattern[str], float], ...]] = field(default_factory=dict)

    def role_terms(self, role: str, lang: str) -> Mapping[str, float]:
        return self.terms.get(role, {}).get(lang, {})


@dataclass(frozen=True)
class LanguageLexicon:
    """Sentiment machinery for one language (keys under ``languages.<code>``)."""

    code: str
    negation: tuple[str, ...] = ()          # cue before the word it negates
    negation_post: tuple[str, ...] = ()     # cue after the word it negates (Korean 않다, 없다)
    lack: tuple[str, ...] = ()              # "no X" / "X 없다": an absent aspect is a pain
    negation_prefixes: tuple[str, ...] = () # Korean 불-/무- noun prefixes
    intensifiers: Mapping[str, float] = field(default_factory=dict)
    excess: tuple[str, ...] = ()            # "too" + neutral word -> negative
    positive: Mapping[str, float] = field(default_factory=dict)
    negative: Mapping[str, float] = field(default_factory=dict)
    failure_verbs: tuple[str, ...] = ()     # neutral verbs, negative when negated ("doesn't work")
    clause_breaks: tuple[str, ...] = ()     # contrast words / connectives that end a clause
    wish: tuple[str, ...] = ()              # "I wish" / "-면 좋겠다": an unmet wish (mildly negative)
    positive_patterns: tuple[tuple[re.Pattern[str], float], ...] = ()  # (regex, weight)
    negative_patterns: tuple[tuple[re.Pattern[str], float], ...] = ()
    stemmer: str | None = None              # snowball stemmer name (latin-script languages)
    problem: Mapping[str, float] = field(default_factory=dict)  # fault words: fallback-eligible negatives
    fallback: str = "all"                   # "all" | "problems": which aspect-less negatives fall back
    conditional: tuple[str, ...] = ()       # "if", "in case": damp the polar words after them in the clause
    contrast: tuple[str, ...] = ()          # "but", "-지만": for sentiment, the clause after it outweighs the one before
    comparative: tuple[str, ...] = ()       # "than": "more expensive than X" is a comparison, weak evidence
    general: "GeneralLexicon | None" = None  # broad general-purpose valence lexicon (sentiment only)
    sentiment_only: Mapping[str, float] = field(default_factory=dict)  # signed; sentiment, never a pain point
    sentiment_only_patterns: tuple[tuple[re.Pattern[str], float], ...] = ()  # (regex, signed weight), idem


@dataclass(frozen=True)
class GeneralLexicon:
    """A broad general-purpose word list with valences, loaded from a package (``general_lexicon``).

    Its words count for the text's sentiment only (never for a pain point) and only where the
    hand-written lists of the language do not already give the word a role.
    """

    source: str                      # "vader": VADER's human-rated valences (vaderSentiment package)
    scale: float = 0.35              # source valence (VADER: -4..4) * scale -> lexicon weight
    min_valence: float = 0.0         # |valence| below this is ignored (near-neutral words)
    exclude: tuple[str, ...] = ()    # words of the source that are not opinions in feedback
    boosters: bool = True            # also take the source's degree adverbs as intensifiers


@dataclass
class Taxonomy:
    version: str
    name: str
    categories: tuple[Category, ...]
    languages: Mapping[str, LanguageLexicon]
    min_confidence: float = 0.35
    fallback_category: str | None = None
    fallback_factor: float = 0.6
    fallback_mode: str = "alone"  # "alone": only when nothing else found; "always": per clause
    source: str | None = None
    # compiled matchers, filled lazily by the analysers (keyed by analyser name)
    _compiled: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def category_ids(self) -> tuple[str, ...]:
        return tuple(c.id for c in self.categories)

    def category(self, cid: str) -> Category:
        for c in self.categories:
            if c.id == cid:
                return c
        raise KeyError(cid)

    def has_category(self, cid: str) -> bool:
        return any(c.id == cid for c in self.categories)

    def suggested_action(self, cid: str) -> str:
        return self.category(cid).suggested_action

    def lexicon(self, lang: str) -> LanguageLexicon | None:
        return self.languages.get(lang)

    def compiled(self, key: str, build):  # noqa: ANN001 - build is a callable
        """Return (and cache) a matcher compiled from this taxonomy."""
        if key not in self._compiled:
            self._compiled[key] = build(self)
        return self._compiled[key]


# --------------------------------------------------------------------------- loading

def _weights(value: Any, where: str, *, signed: bool = False) -> dict[str, float]:
    """Accept a list of terms (weight 1) or a mapping term -> weight."""
    if value is None:
        return {}
    if isinstance(value, str):
        value = [value]
    out: dict[str, float] = {}
    if isinstance(value, Mapping):
        items = value.items()
    elif isinstance(value, (list, tuple)):
        items = []
        for v in value:
            if isinstance(v, Mapping):
                items.extend(v.items())
            else:
                items.append((v, 1.0))
    else:
        raise TaxonomyError(f"{where}: expected a list or mapping of terms")
    for term, w in items:
        if not isinstance(term, str) or not term.strip():
            raise TaxonomyError(f"{where}: empty or non-string term {term!r}")
        try:
            weight = float(w)
        except (TypeError, ValueError) as exc:
            raise TaxonomyError(f"{where}: weight of {term!r} is not a number") from exc
        if not signed and weight <= 0:
            raise TaxonomyError(f"{where}: weight of {term!r} must be > 0")
        out[term.strip()] = weight
    return out


def _strings(value: Any, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise TaxonomyError(f"{where}: expected a list of strings")
    return tuple(v.strip() for v in value if v.strip())


def _patterns(value: Any, where: str, signed: bool = False) -> tuple[tuple[re.Pattern[str], float], ...]:
    """A list of regular expressions (weight 1) or a mapping regex -> weight."""
    out = []
    for p, w in _weights(value, where, signed=signed).items():
        try:
            out.append((re.compile(p, re.IGNORECASE), w))
        except re.error as exc:
            raise TaxonomyError(f"{where}: bad regular expression {p!r}: {exc}") from exc
    return tuple(out)


def _per_language(value: Any, where: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise TaxonomyError(f"{where}: expected a mapping language -> terms")
    return value


def _category(raw: Any, idx: int) -> Category:
    where = f"categories[{idx}]"
    if not isinstance(raw, Mapping):
        raise TaxonomyError(f"{where}: expected a mapping")
    cid = raw.get("id")
    if not isinstance(cid, str) or not _ID_RE.match(cid):
        raise TaxonomyError(f"{where}: id must match {_ID_RE.pattern}, got {cid!r}")
    where = f"category {cid}"
    terms: dict[str, dict[str, dict[str, float]]] = {}
    for role in CATEGORY_TERM_ROLES:
        per_lang = _per_language(raw.get(role), f"{where}.{role}")
        terms[role] = {
            lang: _weights(v, f"{where}.{role}.{lang}", signed=(role == "context"))
            for lang, v in per_lang.items()
        }
    patterns = {
        lang: _patterns(v, f"{where}.patterns.{lang}")
        for lang, v in _per_language(raw.get("patterns"), f"{where}.patterns").items()
    }
    if not any(terms[r] for r in CATEGORY_TERM_ROLES) and not patterns:
        raise TaxonomyError(f"{where}: no terms or patterns in any language")
    return Category(
        id=cid,
        label=str(raw.get("label") or cid.replace("_", " ").capitalize()),
        suggested_action=str(raw.get("suggested_action") or ""),
        description=str(raw.get("description") or ""),
        terms=terms,
        patterns=patterns,
    )


def _language(code: str, raw: Any) -> LanguageLexicon:
    where = f"languages.{code}"
    if not isinstance(raw, Mapping):
        raise TaxonomyError(f"{where}: expected a mapping")
    return LanguageLexicon(
        code=code,
        negation=_strings(raw.get("negation"), f"{where}.negation"),
        negation_post=_strings(raw.get("negation_post"), f"{where}.negation_post"),
        lack=_strings(raw.get("lack"), f"{where}.lack"),
        negation_prefixes=_strings(raw.get("negation_prefixes"), f"{where}.negation_prefixes"),
        intensifiers=_weights(raw.get("intensifiers"), f"{where}.intensifiers"),
        excess=_strings(raw.get("excess"), f"{where}.excess"),
        positive=_weights(raw.get("positive"), f"{where}.positive"),
        negative=_weights(raw.get("negative"), f"{where}.negative"),
        failure_verbs=_strings(raw.get("failure_verbs"), f"{where}.failure_verbs"),
        clause_breaks=_strings(raw.get("clause_breaks"), f"{where}.clause_breaks"),
        wish=_strings(raw.get("wish"), f"{where}.wish"),
        positive_patterns=_patterns(raw.get("positive_patterns"), f"{where}.positive_patterns"),
        negative_patterns=_patterns(raw.get("negative_patterns"), f"{where}.negative_patterns"),
        stemmer=raw.get("stemmer"),
        problem=_weights(raw.get("problem"), f"{where}.problem"),
        conditional=_strings(raw.get("conditional"), f"{where}.conditional"),
        contrast=_strings(raw.get("contrast"), f"{where}.contrast"),
        comparative=_strings(raw.get("comparative"), f"{where}.comparative"),
        fallback=_lang_fallback(raw.get("fallback", "all"), where),
        general=_general(raw.get("general_lexicon"), f"{where}.general_lexicon"),
        sentiment_only=_weights(raw.get("sentiment_only"), f"{where}.sentiment_only", signed=True),
        sentiment_only_patterns=_patterns(raw.get("sentiment_only_patterns"),
                                          f"{where}.sentiment_only_patterns", signed=True),
    )


def _general(raw: Any, where: str) -> GeneralLexicon | None:
    if raw is None:
        return None
    if isinstance(raw, str):
        raw = {"source": raw}
    if not isinstance(raw, Mapping) or not isinstance(raw.get("source"), str):
        raise TaxonomyError(f"{where}: expected a mapping with 'source'")
    try:
        scale = float(raw.get("scale", 0.35))
        min_valence = float(raw.get("min_valence", 0.0))
    except (TypeError, ValueError) as exc:
        raise TaxonomyError(f"{where}: scale and min_valence must be numbers") from exc
    if scale <= 0:
        raise TaxonomyError(f"{where}.scale must be > 0")
    return GeneralLexicon(
        source=raw["source"].strip().lower(),
        scale=scale,
        min_valence=min_valence,
        exclude=_strings(raw.get("exclude"), f"{where}.exclude"),
        boosters=bool(raw.get("boosters", True)),
    )


def _lang_fallback(value: Any, where: str) -> str:
    if value not in ("all", "problems"):
        raise TaxonomyError(f"{where}.fallback must be 'all' or 'problems', got {value!r}")
    return str(value)


def _fallback_mode(value: Any) -> str:
    if value not in ("alone", "always"):
        raise TaxonomyError(f"settings.fallback_mode must be 'alone' or 'always', got {value!r}")
    return str(value)


def _merge_languages(base: Mapping[str, Any], own: Mapping[str, Any]) -> dict[str, Any]:
    """Own per-language entries extend the inherited ones (lists concatenate, mappings update)."""
    out: dict[str, Any] = {k: dict(v) if isinstance(v, Mapping) else v for k, v in base.items()}
    for lang, raw in own.items():
        if not isinstance(raw, Mapping) or not isinstance(out.get(lang), Mapping):
            out[lang] = raw
            continue
        merged = dict(out[lang])
        for key, value in raw.items():
            old = merged.get(key)
            if isinstance(old, list) and isinstance(value, list):
                merged[key] = old + value
            elif isinstance(old, Mapping) and isinstance(value, Mapping):
                merged[key] = {**old, **value}
            else:
                merged[key] = value
        out[lang] = merged
    return out


def _inherited_languages(ref: Any, base_dir: Path | None) -> Mapping[str, Any]:
    if not isinstance(ref, str) or not ref.strip():
        raise TaxonomyError("languages_from must be a file name")
    p = Path(ref)
    if not p.is_absolute():
        p = (base_dir or TAXONOMY_DIR) / p
    if not p.exists() and (TAXONOMY_DIR / ref).exists():
        p = TAXONOMY_DIR / ref
    data = read_mapping(p, "languages_from: taxonomy", TaxonomyError)
    langs = data.get("languages") or {}
    if data.get("languages_from"):
        langs = _merge_languages(_inherited_languages(data["languages_from"], p.parent), langs)
    return langs


def taxonomy_from_dict(
    data: Mapping[str, Any], *, source: str | None = None, base_dir: Path | None = None
) -> Taxonomy:
    """Build a :class:`Taxonomy` from already-parsed YAML/JSON data.

    ``languages_from: default.yaml`` reuses another taxonomy's sentiment lexicons
    (relative to ``base_dir``, else the bundled taxonomies folder); the file's own
    ``languages`` entries extend them.
    """
    if not isinstance(data, Mapping):
        raise TaxonomyError("taxonomy: top level must be a mapping")
    version = data.get("version")
    if version is None or str(version).strip() == "":
        raise TaxonomyError("taxonomy: 'version' is required")
    raw_cats = data.get("categories")
    if not isinstance(raw_cats, list) or not raw_cats:
        raise TaxonomyError("taxonomy: 'categories' must be a non-empty list")
    categories = tuple(_category(c, i) for i, c in enumerate(raw_cats))
    ids = [c.id for c in categories]
    dupes = {i for i in ids if ids.count(i) > 1}
    if dupes:
        raise TaxonomyError(f"taxonomy: duplicate category ids {sorted(dupes)}")
    raw_langs = _per_language(data.get("languages"), "languages")
    if data.get("languages_from"):
        raw_langs = _merge_languages(_inherited_languages(data["languages_from"], base_dir), raw_langs)
    languages = {str(code): _language(str(code), raw) for code, raw in raw_langs.items()}
    settings = data.get("settings") or {}
    if not isinstance(settings, Mapping):
        raise TaxonomyError("taxonomy: 'settings' must be a mapping")
    fallback = settings.get("fallback_category")
    if fallback is not None and fallback not in ids:
        raise TaxonomyError(f"settings.fallback_category {fallback!r} is not a category id")
    return Taxonomy(
        version=str(version),
        name=str(data.get("name") or "taxonomy"),
        categories=categories,
        languages=languages,
        min_confidence=float(settings.get("min_confidence", 0.35)),
        fallback_category=fallback,
        fallback_factor=float(settings.get("fallback_factor", 0.6)),
        fallback_mode=_fallback_mode(settings.get("fallback_mode", "alone")),
        source=source,
    )


_CACHE: dict[str, Taxonomy] = {}
_RECHECK_SECONDS = 2.0  # how often a cached file is checked for changes (mtime)
_FAST: dict[object, tuple[float, Taxonomy]] = {}


def load_taxonomy(path: str | Path | None = None) -> Taxonomy:
    """Load a taxonomy YAML file; ``None`` loads the bundled default.

    Loaded taxonomies are cached by resolved path and modification time, so
    repeated calls are cheap and the compiled matchers are reused; a file is
    looked at again (stat) at most every ``_RECHECK_SECONDS``.
    """
    now = time.monotonic()
    fast_key = path if isinstance(path, (str, type(None))) else str(path)
    hit = _FAST.get(fast_key)
    if hit is not None and now - hit[0] < _RECHECK_SECONDS:
        return hit[1]
    p = Path(path) if path is not None else DEFAULT_TAXONOMY_PATH
    p = p.resolve()
    try:
        key = f"{p}:{p.stat().st_mtime_ns}"
    except FileNotFoundError as exc:
        raise TaxonomyError(f"taxonomy file not found: {p}") from exc
    cached = _CACHE.get(key)
    if cached is None:
        with p.open(encoding="utf-8") as fh:
            data = yaml.safe_load(fh)
        cached = taxonomy_from_dict(data, source=str(p), base_dir=p.parent)
        _CACHE[key] = cached
    _FAST[fast_key] = (now, cached)
    return cached


def default_taxonomy() -> Taxonomy:
    return load_taxonomy(None)
