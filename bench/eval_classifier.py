"""Evaluate the feedback classifier on the real datasets in ../shared/data.

    python bench/eval_classifier.py                 # all evaluations, human-readable
    python bench/eval_classifier.py --json          # machine-readable
    python bench/eval_classifier.py --errors ko     # also list misclassified texts

Pain points
  * korean_smartstore_reviews/reviews_dev.csv: a review's pain points are the mapped
    categories whose aspect polarity is N (배송 delivery, 품질 product_quality, 디자인
    product_design, 가격 price_value, 서비스운영 customer_service, 기타 none).
  * semeval2016_absa_en (laptops + restaurants): a sentence's pain points are the mapped
    categories of its opinions with polarity "negative" (mapping in shared/data/README.md).
  Only categories the dataset can label are scored; predictions of other categories
  (billing_payment, refund_return, wrong_or_missing_item) are not counted as errors
  because the data has no label for them.
Sentiment
  * amazon_alexa_reviews: stars 1-2 negative, 3 neutral, 4-5 positive, from text only.
Throughput
  * texts/s of classify() per language, Kiwi already built (warm), one core.

The datasets are read in place, never copied into the product.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path
from typing import Callable, Iterable

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from pipeline.classify import classify, load_taxonomy  # noqa: E402

DEFAULT_DATA_DIR = ROOT.parent / "shared" / "data"

KO_MAP = {
    "배송": "delivery",
    "품질": "product_quality",
    "디자인": "product_design",
    "가격": "price_value",
    "서비스운영": "customer_service",
}
KO_SCORED = tuple(sorted(set(KO_MAP.values())))
LAPTOP_SCORED = ("customer_service", "delivery", "price_value", "product_design", "product_quality")
REST_SCORED = ("customer_service", "price_value", "product_design", "product_quality")

Item = tuple[str, frozenset[str]]

# Portuguese has no labelled text in shared/data (Olist reviews carry scores only), so
# its throughput is measured on these sentences written for this benchmark.
PT_SAMPLES = [
    "Entrega atrasada e o produto veio com defeito.",
    "Produto excelente, chegou antes do prazo. Recomendo!",
    "Ainda não recebi o pedido e o vendedor não responde.",
    "Muito caro para a qualidade, não vale a pena.",
    "Veio a cor errada e faltando uma peça, péssimo atendimento.",
    "Gostei muito, bonito e bem embalado, mas a entrega demorou.",
    "Fui cobrado duas vezes no cartão e ninguém resolveu.",
    "Quero o reembolso, o produto parou de funcionar em uma semana.",
]


# ----------------------------------------------------------------------------- loaders

def load_korean(data_dir: Path) -> list[Item]:
    path = data_dir / "korean_smartstore_reviews" / "reviews_dev.csv"
    items = []
    with path.open(encoding="utf-8", newline="") as fh:
        for row in csv.DictReader(fh):
            cats = [c.strip() for c in row["final_category"].split(",")]
            pols = [p.strip() for p in row["final_polarity"].split(",")]
            gold = frozenset(KO_MAP[c] for c, p in zip(cats, pols) if p == "N" and c in KO_MAP)
            items.append((row["review"], gold))
    return items


def _laptop_category(cat: str) -> str | None:
    entity, _, attr = cat.partition("#")
    if entity == "SUPPORT":
        return "customer_service"
    if entity == "SHIPPING":
        return "delivery"
    if entity == "COMPANY" or attr in ("GENERAL", "MISCELLANEOUS"):
        return None
    if attr == "PRICE":
        return "price_value"
    if attr in ("DESIGN_FEATURES", "USABILITY", "PORTABILITY"):
        return "product_design"
    if attr in ("QUALITY", "OPERATION_PERFORMANCE", "CONNECTIVITY"):
        return "product_quality"
    return None


def _restaurant_category(cat: str) -> str | None:
    entity, _, attr = cat.partition("#")
    if cat == "SERVICE#GENERAL":
        return "customer_service"
    if attr == "PRICES":
        return "price_value"
    if cat in ("FOOD#QUALITY", "DRINKS#QUALITY"):
        return "product_quality"
    if attr == "STYLE_OPTIONS":
        return "product_design"
    return None


def load_semeval(data_dir: Path, domain: str) -> list[Item]:
    name = {"laptops": "ABSA16_Laptops_Train_SB1_v2.xml", "restaurants": "ABSA16_Restaurants_Train_SB1_v2.xml"}[domain]
    mapper = _laptop_category if domain == "laptops" else _restaurant_category
    tree = ET.parse(data_dir / "semeval2016_absa_en" / name)
    items = []
    for s in tree.iter("sentence"):
        text = s.findtext("text") or ""
        gold = set()
        for op in s.iter("Opinion"):
            if op.get("polarity") == "negative":
                c = mapper(op.get("category", ""))
                if c:
                    gold.add(c)
        items.append((text, frozenset(gold)))
    return items


def load_alexa(data_dir: Path) -> list[tuple[str, str]]:
    path = data_dir / "amazon_alexa_reviews" / "reviews_dev.tsv"
    out = []
    with path.open(encoding="utf-8", newline="") as fh:
        for row in csv.DictReader(fh, delimiter="\t"):
            text = (row.get("verified_reviews") or "").strip()
            try:
                stars = int(row["rating"])
            except (KeyError, ValueError):
                continue
            if not text:
                continue
            label = "negative" if stars <= 2 else "neutral" if stars == 3 else "positive"
            out.append((text, label))
    return out


# ----------------------------------------------------------------------------- metrics

def prf(tp: int, fp: int, fn: int) -> dict[str, float]:
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return {"precision": round(p, 4), "recall": round(r, 4), "f1": round(f, 4), "tp": tp, "fp": fp, "fn": fn}


def evaluate_pain(
    items: Iterable[Item],
    scored: tuple[str, ...],
    predict: Callable[[str], set[str]],
    errors: list | None = None,
) -> dict:
    counts = {c: Counter() for c in scored}
    n = 0
    for text, gold in items:
        n += 1
        pred = predict(text) & set(scored)
        for c in scored:
            if c in pred and c in gold:
                counts[c]["tp"] += 1
            elif c in pred:
                counts[c]["fp"] += 1
            elif c in gold:
                counts[c]["fn"] += 1
        if errors is not None and pred != gold:
            errors.append((text, sorted(gold), sorted(pred)))
    per = {c: prf(counts[c]["tp"], counts[c]["fp"], counts[c]["fn"]) for c in scored}
    tp = sum(v["tp"] for v in per.values())
    fp = sum(v["fp"] for v in per.values())
    fn = sum(v["fn"] for v in per.values())
    micro = prf(tp, fp, fn)
    macro = round(sum(v["f1"] for v in per.values()) / len(per), 4)
    return {"n": n, "per_category": per, "micro": micro, "micro_f1": micro["f1"], "macro_f1": macro}


def pain_predictor(lang: str | None, taxonomy=None) -> Callable[[str], set[str]]:
    def predict(text: str) -> set[str]:
        return set(classify(text, language=lang, taxonomy=taxonomy).pain_point_ids())

    return predict


def korean_eval(data_dir: Path = DEFAULT_DATA_DIR, errors: list | None = None) -> dict:
    return evaluate_pain(load_korean(data_dir), KO_SCORED, pain_predictor(None), errors)


def english_eval(data_dir: Path = DEFAULT_DATA_DIR, errors: list | None = None) -> dict:
    lap = evaluate_pain(load_semeval(data_dir, "laptops"), LAPTOP_SCORED, pain_predictor(None), errors)
    rest = evaluate_pain(load_semeval(data_dir, "restaurants"), REST_SCORED, pain_predictor(None), errors)
    # combined: sum counts per category over both domains
    per = {}
    for c in sorted(set(LAPTOP_SCORED) | set(REST_SCORED)):
        tp = fp = fn = 0
        for part in (lap, rest):
            if c in part["per_category"]:
                v = part["per_category"][c]
                tp, fp, fn = tp + v["tp"], fp + v["fp"], fn + v["fn"]
        per[c] = prf(tp, fp, fn)
    micro = prf(sum(v["tp"] for v in per.values()), sum(v["fp"] for v in per.values()),
                sum(v["fn"] for v in per.values()))
    combined = {
        "n": lap["n"] + rest["n"],
        "per_category": per,
        "micro": micro,
        "micro_f1": micro["f1"],
        "macro_f1": round(sum(v["f1"] for v in per.values()) / len(per), 4),
    }
    return {"laptops": lap, "restaurants": rest, "combined": combined}


def sentiment_eval(data_dir: Path = DEFAULT_DATA_DIR, errors: list | None = None) -> dict:
    items = load_alexa(data_dir)
    confusion: Counter = Counter()
    for text, gold in items:
        pred = classify(text).sentiment.label
        confusion[(gold, pred)] += 1
        if errors is not None and pred != gold:
            errors.append((text, gold, pred))
    n = len(items)
    correct = sum(v for (g, p), v in confusion.items() if g == p)
    polar = [(g, p) for (g, p) in confusion.elements() if g != "neutral"]
    polar_correct = sum(1 for g, p in polar if g == p)
    labels = ("negative", "neutral", "positive")
    per_class = {}
    for lab in labels:
        support = sum(v for (g, _), v in confusion.items() if g == lab)
        predicted = sum(v for (_, p), v in confusion.items() if p == lab)
        tp = confusion[(lab, lab)]
        per_class[lab] = prf(tp, predicted - tp, support - tp) | {"support": support}
    majority = max(Counter(g for _, g in items).values()) / n if n else 0.0
    return {
        "n": n,
        "accuracy": round(correct / n, 4) if n else 0.0,
        "macro_f1": round(sum(v["f1"] for v in per_class.values()) / 3, 4),
        "accuracy_non_neutral": round(polar_correct / len(polar), 4) if polar else 0.0,
        "majority_baseline": round(majority, 4),
        "per_class": per_class,
        "confusion": {f"{g}->{p}": v for (g, p), v in sorted(confusion.items())},
    }


def throughput(texts_by_lang: dict[str, list[str]], repeat: int = 1) -> dict:
    out = {}
    for lang, texts in texts_by_lang.items():
        if not texts:
            continue
        for t in texts[:20]:  # warm-up (builds Kiwi and the compiled lexicons)
            classify(t)
        t0 = time.perf_counter()
        for _ in range(repeat):
            for t in texts:
                classify(t)
        dt = time.perf_counter() - t0
        n = len(texts) * repeat
        chars = sum(len(t) for t in texts) * repeat
        out[lang] = {
            "texts": n,
            "texts_per_s": round(n / dt, 1),
            "ms_per_text": round(1000 * dt / n, 3),
            "mean_chars": round(chars / n, 1),
        }
    return out


# ----------------------------------------------------------------------------- report

def _print_pain(title: str, res: dict) -> None:
    print(f"\n{title}  (n={res['n']})")
    print(f"  {'category':<22}{'P':>7}{'R':>7}{'F1':>7}{'tp':>6}{'fp':>6}{'fn':>6}")
    for c, v in res["per_category"].items():
        print(f"  {c:<22}{v['precision']:>7.3f}{v['recall']:>7.3f}{v['f1']:>7.3f}{v['tp']:>6}{v['fp']:>6}{v['fn']:>6}")
    m = res["micro"]
    print(f"  {'micro':<22}{m['precision']:>7.3f}{m['recall']:>7.3f}{m['f1']:>7.3f}{m['tp']:>6}{m['fp']:>6}{m['fn']:>6}")
    print(f"  {'macro F1':<22}{'':>14}{res['macro_f1']:>7.3f}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    ap.add_argument("--json", action="store_true", help="print one JSON document")
    ap.add_argument("--errors", choices=["ko", "en", "sentiment"], help="list misclassified texts")
    ap.add_argument("--max-errors", type=int, default=60)
    args = ap.parse_args(argv)
    d = args.data_dir
    if not d.exists():
        print(f"data directory not found: {d}", file=sys.stderr)
        return 2
    tax = load_taxonomy()
    errs: dict[str, list] = {"ko": [], "en": [], "sentiment": []}
    ko = korean_eval(d, errs["ko"])
    en = english_eval(d, errs["en"])
    sent = sentiment_eval(d, errs["sentiment"])
    ko_texts = [t for t, _ in load_korean(d)]
    en_texts = [t for t, _ in load_semeval(d, "laptops")] + [t for t, _ in load_alexa(d)]
    tput = throughput({"ko": ko_texts, "en": en_texts, "pt": PT_SAMPLES * 50})
    report = {
        "taxonomy_version": tax.version,
        "korean_smartstore": ko,
        "semeval2016_en": en,
        "alexa_sentiment": sent,
        "throughput": tput,
    }
    if args.json:
        print(json.dumps(report, ensure_ascii=False, indent=2))
    else:
        print(f"taxonomy {tax.name} v{tax.version}")
        _print_pain("Korean smartstore reviews - pain points", ko)
        _print_pain("SemEval-2016 laptops (sentences) - pain points", en["laptops"])
        _print_pain("SemEval-2016 restaurants (sentences) - pain points", en["restaurants"])
        _print_pain("SemEval-2016 laptops + restaurants combined", en["combined"])
        print(f"\nAmazon Alexa sentiment (n={sent['n']}): accuracy {sent['accuracy']:.3f}, "
              f"macro-F1 {sent['macro_f1']:.3f}, accuracy without 3-star {sent['accuracy_non_neutral']:.3f}, "
              f"majority baseline {sent['majority_baseline']:.3f}")
        for lab, v in sent["per_class"].items():
            print(f"  {lab:<9} P {v['precision']:.3f} R {v['recall']:.3f} F1 {v['f1']:.3f} (support {v['support']})")
        print("\nThroughput (one core, warm):")
        for lang, v in tput.items():
            print(f"  {lang}: {v['texts_per_s']:.0f} texts/s, {v['ms_per_text']:.2f} ms/text "
                  f"(mean {v['mean_chars']:.0f} chars)")
    if args.errors:
        print(f"\nErrors ({args.errors}), first {args.max_errors}:")
        for e in errs[args.errors][: args.max_errors]:
            print("  ", e)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
