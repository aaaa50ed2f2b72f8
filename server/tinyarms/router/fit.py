"""Fitting route thresholds on labelled requests, and evaluating a router.

Labelled files are `label<TAB>text` lines (label: a route name or `none`; `#` comments).
Fitting picks per-route thresholds that maximise accuracy while keeping out-of-scope
recall at or above a floor. A labelled request that is also one of the router's own
training utterances is scored by a model trained without it (10-fold cross-validation),
so fitting on the training set does not grade the model on what it memorised.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
from attrs import define

from tinyarms.router.classifier import NONE, out_of_fold
from tinyarms.router.encoder import cached_encode
from tinyarms.router.language import is_english
from tinyarms.router.router import Router, normalise, training_rows


class LabelledFileError(ValueError):
    pass


def load_labelled(path: Path) -> list[tuple[str, str]]:
    """(label, text) rows; a malformed line is an error naming its line."""
    rows = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise LabelledFileError(f"{path}: cannot read: {exc}") from exc
    for number, line in enumerate(lines, 1):
        if not line.strip() or line.startswith("#"):
            continue
        label, sep, text = line.partition("\t")
        if not sep or not label.strip() or not text.strip():
            raise LabelledFileError(f"{path}:{number}: expected 'label<TAB>text'")
        rows.append((label.strip(), text.strip()))
    if not rows:
        raise LabelledFileError(f"{path}: no labelled rows")
    return rows


def scored(router: Router, texts: list[str]) -> tuple[list[str], np.ndarray, list[str | None]]:
    """Label names, embedding-stage probabilities (out-of-fold for training texts) and rule hits."""
    train_texts, train_labels = training_rows(router.config)
    labels, probs = router.probabilities(texts)
    index = {t: i for i, t in enumerate(train_texts)}
    if any(t in index for t in texts) and router.classifier is not None and router.encoder is not None:
        names, oof = out_of_fold(cached_encode(router.encoder, train_texts), train_labels, train_texts)
        if router.multilingual is not None:  # both classifiers, merged as the router merges them
            _, second = out_of_fold(cached_encode(router.multilingual, train_texts), train_labels, train_texts)
            oof = router.combine(oof, second, np.array([is_english(t) for t in train_texts], dtype=bool))
        columns = [names.index(label) for label in labels]
        for row, text in enumerate(texts):
            if text in index:
                probs[row] = oof[index[text]][columns]
    rules = []
    for text in texts:
        clean = normalise(text)
        hit = router.rules.slash(clean) or router.rules.keyword(clean)
        rules.append(hit.route if hit is not None and hit.route is not None else None)
    return labels, probs, rules


def predict(labels: list[str], probs: np.ndarray, rules: list[str | None], thresholds: dict[str, float]) -> list[str]:
    out = []
    for row, rule in zip(probs, rules, strict=True):
        if rule is not None:
            out.append(rule)
            continue
        best = labels[int(row.argmax())]
        out.append(best if best != NONE and row.max() >= thresholds.get(best, 0.5) else NONE)
    return out


def metrics(gold: list[str], pred: list[str]) -> dict[str, Any]:
    names = sorted(set(gold) | set(pred))
    accuracy = sum(g == p for g, p in zip(gold, pred, strict=True)) / len(gold)
    f1s = []
    for name in names:
        tp = sum(g == p == name for g, p in zip(gold, pred, strict=True))
        fp = sum(p == name != g for g, p in zip(gold, pred, strict=True))
        fn = sum(g == name != p for g, p in zip(gold, pred, strict=True))
        f1s.append(2 * tp / (2 * tp + fp + fn) if tp else 0.0)
    oos = [p for g, p in zip(gold, pred, strict=True) if g == NONE]
    pairs = list(zip(gold, pred, strict=True))
    confusion = {g: {p: pairs.count((g, p)) for p in names} for g in names}
    return {
        "n": len(gold),
        "accuracy": round(accuracy, 4),
        "macro_f1": round(sum(f1s) / len(f1s), 4),
        "oos_recall": round(sum(p == NONE for p in oos) / len(oos), 4) if oos else None,
        "confusion": confusion,
    }


@define
class FitResult:
    thresholds: dict[str, float]
    before: dict[str, Any]
    after: dict[str, Any]


GRID = [round(x, 3) for x in np.arange(0.2, 0.951, 0.025)]


def fit(router: Router, rows: list[tuple[str, str]], min_oos_recall: float = 0.9) -> FitResult:
    """Per-route thresholds for the router on labelled rows: best accuracy with OOS recall >= the floor."""
    gold = [label for label, _ in rows]
    labels, probs, rules = scored(router, [text for _, text in rows])
    current = {name: spec.threshold for name, spec in router.specs.items()}
    best = fit_thresholds(labels, probs, rules, gold, current, min_oos_recall)
    before = metrics(gold, predict(labels, probs, rules, current))
    return FitResult(best, before, metrics(gold, predict(labels, probs, rules, best)))


def fit_thresholds(
    labels: list[str], probs: np.ndarray, rules: list[str | None], gold: list[str],
    start: dict[str, float], min_oos_recall: float = 0.9,
) -> dict[str, float]:  # fmt: skip
    """Coordinate ascent over per-route thresholds from `start`."""
    gold_array = np.array(gold)
    is_oos = gold_array == NONE

    def objective(thresholds: dict[str, float]) -> tuple[float, float]:
        pred = np.array(predict(labels, probs, rules, thresholds))
        accuracy = float((pred == gold_array).mean())
        oos = float((pred[is_oos] == NONE).mean()) if is_oos.any() else 1.0
        # Below the floor, recall comes first; above it, accuracy (ties: more recall).
        return (accuracy, oos) if oos >= min_oos_recall else (-1.0 + oos, accuracy)

    best = dict(start)
    best_score = objective(best)
    for _ in range(4):
        improved = False
        for name in sorted(best):
            for value in GRID:
                trial = {**best, name: value}
                score = objective(trial)
                if score > best_score:
                    best, best_score, improved = trial, score, True
        if not improved:
            break
    return best


def thresholds_toml(result: FitResult, source: str) -> str:
    lines = [
        f"# Route thresholds fitted by `tinyarms router fit {source}`.",
        f"# before: accuracy {result.before['accuracy']}, OOS recall {result.before['oos_recall']}",
        f"# after:  accuracy {result.after['accuracy']}, OOS recall {result.after['oos_recall']}",
        "# Include it from your user file with: extends = \"<this file's path>\"",
    ]
    for name, value in sorted(result.thresholds.items()):
        lines += ["", f"[routes.{name}]", f"threshold = {value}"]
    return "\n".join(lines) + "\n"


def evaluate(router: Router, rows: list[tuple[str, str]]) -> dict[str, Any]:
    """Route every request through the full pipeline (rules, embeddings, ...), timed one by one."""
    gold, pred, times = [], [], []
    stages: dict[str, int] = {}
    for label, text in rows:
        start = time.perf_counter()
        decision = router.route(text)
        times.append((time.perf_counter() - start) * 1000)
        gold.append(label)
        pred.append(decision.route or NONE)
        stages[decision.stage] = stages.get(decision.stage, 0) + 1
    result = metrics(gold, pred)
    times.sort()
    result["latency_ms"] = {
        "p50": round(statistics.median(times), 3),
        "p95": round(times[min(len(times) - 1, int(0.95 * len(times)))], 3),
    }
    result["stages"] = stages
    return result
