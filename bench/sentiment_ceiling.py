"""How far could a *supervised* English sentiment model get on the dev data? (issue 3)

The acceptance asks for sentiment balanced accuracy >= 0.75 on SemEval-2016 laptops sentences
and Amazon Alexa reviews. This script measures what a model trained on the labelled data
itself reaches. The SemEval and Alexa files may not be shipped, so no model trained on them
can be; the figures say what an operator would get from ``train-sentiment`` on similar data
of their own, and how far from 0.75 even that stays.

    python bench/sentiment_ceiling.py                  # our learned model (pipeline/classify/learned.py)
    pip install scikit-learn                           # optional, not a project dependency:
    python bench/sentiment_ceiling.py --sklearn        # also scikit-learn with character n-grams

Models: ``learned`` is the project's own (``train-sentiment``: words, word pairs and the
lexicon's view, class-balanced logistic regression, L2 0.03). ``sklearn``: class-balanced
logistic regression on word 1-2-gram TF-IDF + character 2-5-gram TF-IDF + the lexicon's score
and label. Figures are balanced accuracy (mean recall over negative / neutral / positive):

* ``lexicon``: our classifier alone (no training; the README's figure);
* ``cv``: stratified 5-fold cross-validation inside the data set (train on 4/5, test on 1/5):
  an in-domain model, what an operator could train on their own rated feedback;
* ``cv+other``: the same, with the other two labelled English sets added to every training fold;
* ``cross``: trained only on the other two sets, tested on this one (a new product).

Ends with one JSON line.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from eval_classifier import DEFAULT_DATA_DIR, LABELS, Item, load_alexa, load_semeval  # noqa: E402

from pipeline.classify import classify  # noqa: E402
from pipeline.classify.classifier import sentiment_example  # noqa: E402
from pipeline.classify.learned import balanced_accuracy, cross_validate, train  # noqa: E402

_lex_cache: dict[str, list[float]] = {}


def _lex(text: str) -> list[float]:
    v = _lex_cache.get(text)
    if v is None:
        s = classify(text, language="en").sentiment
        v = _lex_cache[text] = [s.score] + [float(s.label == lab) for lab in LABELS]
    return v


def _fit_predict(train: list[Item], test: list[Item]) -> list[int]:
    import numpy as np
    from scipy.sparse import csr_matrix, hstack
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    tr = [i.text for i in train]
    te = [i.text for i in test]
    vecs = [TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True),
            TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), min_df=2, sublinear_tf=True,
                            max_features=100_000)]
    a = [v.fit_transform(tr) for v in vecs] + [csr_matrix(np.array([_lex(t) for t in tr]) * 3)]
    b = [v.transform(te) for v in vecs] + [csr_matrix(np.array([_lex(t) for t in te]) * 3)]
    y = [LABELS.index(i.sentiment) for i in train]
    model = LogisticRegression(C=1.0, class_weight="balanced", max_iter=3000)
    return list(model.fit(hstack(a).tocsr(), y).predict(hstack(b).tocsr()))


def _balanced(items: list[Item], pred: list[int]) -> float:
    from sklearn.metrics import balanced_accuracy_score

    return round(float(balanced_accuracy_score([LABELS.index(i.sentiment) for i in items], pred)), 3)


def _cv(items: list[Item], extra: list[Item]) -> float:
    from sklearn.model_selection import StratifiedKFold

    pred = [0] * len(items)
    y = [i.sentiment for i in items]
    for tr, te in StratifiedKFold(5, shuffle=True, random_state=0).split(items, y):
        out = _fit_predict([items[i] for i in tr] + extra, [items[i] for i in te])
        for i, p in zip(te, out):
            pred[i] = p
    return _balanced(items, pred)


def _learned_cv(items: list[Item], extra: list[Item]) -> float:
    ex = [sentiment_example(i.text, i.sentiment, language="en") for i in items]
    extra_ex = [sentiment_example(i.text, i.sentiment, language="en") for i in extra]
    return round(cross_validate(ex, 5, extra=extra_ex), 3)


def _learned_cross(items: list[Item], others: list[Item]) -> float:
    model = train([sentiment_example(i.text, i.sentiment, language="en") for i in others])
    ex = [sentiment_example(i.text, i.sentiment, language="en") for i in items]
    return round(balanced_accuracy([e.label for e in ex],
                                   [LABELS.index(model.predict(e.tokens, e.lexicon)[0]) for e in ex]), 3)


def main() -> int:
    with_sklearn = "--sklearn" in sys.argv[1:]
    if with_sklearn:
        try:
            import sklearn  # noqa: F401
        except ImportError:
            print("--sklearn needs scikit-learn (pip install scikit-learn); it is not a project dependency",
                  file=sys.stderr)
            return 2
    data = DEFAULT_DATA_DIR
    sets = {
        "laptops": [i for i in load_semeval(data, "laptops") if i.sentiment],
        "alexa": load_alexa(data),
        "restaurants": [i for i in load_semeval(data, "restaurants") if i.sentiment],
    }
    result: dict[str, dict[str, float]] = {}
    for name in ("laptops", "alexa"):
        items = sets[name]
        others = [i for k, v in sets.items() if k != name for i in v]
        gold = [LABELS.index(i.sentiment) for i in items]
        row = {
            "lexicon": round(balanced_accuracy(gold, [LABELS.index(classify(i.text, language="en").sentiment.label)
                                                      for i in items]), 3),
            "learned cv": _learned_cv(items, []),
            "learned cv+other": _learned_cv(items, others),
            "learned cross": _learned_cross(items, others),
        }
        if with_sklearn:
            row.update({"sklearn cv": _cv(items, []), "sklearn cv+other": _cv(items, others),
                        "sklearn cross": _balanced(items, _fit_predict(others, items))})
        result[name] = row
        print(f"{name:8s} n={len(items):5d}  " + "  ".join(f"{k} {v:.3f}" for k, v in row.items()), flush=True)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
