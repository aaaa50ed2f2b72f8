"""Cross-validate the router's classifier on the TRAINING set only; prints JSON.

Two splits of tests/data/router_train.tsv (the held-out file is never read here):
- `random`: 10-fold, rows dealt out at random;
- `grouped`: 10-fold over runs of 6 consecutive rows of one label, so a fold's test rows
  come as a batch that was written together and their near-paraphrases are not in training
  (closer to requests from a person the router never saw).
For each variant of the classifier: argmax accuracy, and accuracy / OOS recall of the whole
pipeline (keyword rules, then thresholds fitted on the out-of-fold scores, OOS floor 0.9).
`--extra FILE` adds rows to every fold's training side, never to its test side, so more data
is judged on the same test rows. `--multilingual ENCODER` scores the non-English rows with a model
on that encoder's vectors, as the router does. `--english-only` drops the training rows that are not in English
(language.py's guess), the way the router was trained before issue 16. Accuracy is also reported
on the non-English rows alone.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "server"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from tinyarms.router.classifier import NONE, train  # noqa: E402
from tinyarms.router.encoder import ConcatEncoder, cached_encode, load_encoder  # noqa: E402
from tinyarms.router.fit import fit_thresholds, load_labelled, metrics, predict  # noqa: E402
from tinyarms.router.language import is_english  # noqa: E402
from tinyarms.router.rules import Rules  # noqa: E402

Variant = Callable[[list[str], np.ndarray, list[str], list[str], np.ndarray], tuple[list[str], np.ndarray]]


def embedding_only(train_texts: list[str], train_vecs: np.ndarray, train_labels: list[str],
                   test_texts: list[str], test_vecs: np.ndarray) -> tuple[list[str], np.ndarray]:  # fmt: skip
    model = train(train_vecs, train_labels)
    return model.labels, model.probabilities(test_vecs, test_texts)


def concat(weight: float, **kwargs: Any) -> Variant:
    def run(train_texts: list[str], train_vecs: np.ndarray, train_labels: list[str],
            test_texts: list[str], test_vecs: np.ndarray) -> tuple[list[str], np.ndarray]:  # fmt: skip
        model = train(train_vecs, train_labels, train_texts, ngram_weight=weight, **kwargs)
        return model.labels, model.probabilities(test_vecs, test_texts)

    return run


def groups_of(labels: list[str], size: int = 6) -> np.ndarray:
    """Runs of up to `size` consecutive rows of one label: a writer's near-paraphrases stay together."""
    groups, last, run, group = [], None, 0, -1
    for label in labels:
        if label != last or run == size:
            group, run, last = group + 1, 0, label
        groups.append(group)
        run += 1
    return np.array(groups)


def folds_for(labels: list[str], scheme: str, k: int = 10, run: int = 6, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if scheme == "random":
        return rng.permutation(len(labels)) % k
    groups = groups_of(labels, run)
    group_fold = rng.permutation(int(groups.max()) + 1 if len(groups) else 0) % k
    return group_fold[groups]


def cross_validate(variant: Variant, texts: list[str], vecs: np.ndarray, labels: list[str], folds: np.ndarray,
                   extra: tuple[list[str], np.ndarray, list[str]]) -> tuple[list[str], np.ndarray]:  # fmt: skip
    names = sorted(set(labels) | {NONE})
    probs = np.zeros((len(texts), len(names)), dtype=np.float32)
    for fold in range(int(folds.max()) + 1):
        test = np.flatnonzero(folds == fold)
        keep = np.flatnonzero(folds != fold)
        tr_texts = [texts[i] for i in keep] + extra[0]
        tr_vecs = np.vstack([vecs[keep], extra[1]]) if len(extra[0]) else vecs[keep]
        tr_labels = [labels[i] for i in keep] + extra[2]
        got, fold_probs = variant(tr_texts, tr_vecs, tr_labels, [texts[i] for i in test], vecs[test])
        for j, name in enumerate(got):
            probs[test, names.index(name)] = fold_probs[:, j]
    return names, probs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", default=str(REPO / "tests" / "data" / "router_train.tsv"))
    parser.add_argument("--extra", help="more training rows, added to every fold's training side only")
    parser.add_argument("--variants", default="embedding,concat-1.0")
    parser.add_argument(
        "--encoders", default="all-MiniLM-L6-v2", help="comma-separated; their vectors are concatenated"
    )
    parser.add_argument(
        "--multilingual", help="an encoder for the non-English rows (the router's split), e.g. use-multilingual-v3"
    )
    parser.add_argument("--english-only", action="store_true", help="drop the non-English training rows")
    args = parser.parse_args()
    rows = load_labelled(Path(args.train))
    if args.english_only:
        rows = [(label, text) for label, text in rows if is_english(text)]
    texts, labels = [t for _, t in rows], [label for label, _ in rows]
    encoder = ConcatEncoder([load_encoder(name) for name in args.encoders.split(",")])
    vecs = np.hstack([cached_encode(e, texts) for e in encoder.encoders])
    extra: tuple[list[str], np.ndarray, list[str]] = ([], np.zeros((0, vecs.shape[1]), np.float32), [])
    if args.extra:
        more = load_labelled(Path(args.extra))
        more_vecs = np.hstack([cached_encode(e, [t for _, t in more]) for e in encoder.encoders])
        extra = ([t for _, t in more], more_vecs, [label for label, _ in more])
    multilingual = None
    extra_ml: tuple[list[str], np.ndarray, list[str]] = ([], np.zeros((0, 512), np.float32), [])
    if args.multilingual:
        ml_encoder = load_encoder(args.multilingual)
        multilingual = cached_encode(ml_encoder, texts)
        if args.extra:
            extra_ml = (extra[0], cached_encode(ml_encoder, extra[0]), extra[2])
    rules_engine = Rules(sorted(set(labels) - {NONE}))
    rules = []
    for text in texts:
        hit = rules_engine.keyword(text)
        rules.append(hit.route if hit is not None else None)
    variants: dict[str, Variant] = {"embedding": embedding_only}
    for name in args.variants.split(","):
        if name.startswith("concat-"):  # concat-WEIGHT[:key=value...], e.g. concat-1.0:l2=0.01:scale=8
            weight, *options = name.removeprefix("concat-").split(":")
            kwargs = {k: (int(v) if k == "steps" else float(v)) for k, v in (o.split("=") for o in options)}
            variants[name] = concat(float(weight), **kwargs)
    foreign = np.array([not is_english(text) for text in texts])
    report: dict[str, Any] = {"encoders": args.encoders, "multilingual": args.multilingual, "n": len(rows)}
    report["non_english"] = int(foreign.sum())
    report["extra"] = len(extra[0])
    for name in args.variants.split(","):
        variant = variants[name]
        report[name] = {}
        for scheme in ("random", "grouped"):
            start = time.perf_counter()
            folds = folds_for(labels, scheme)
            names, probs = cross_validate(variant, texts, vecs, labels, folds, extra)
            if multilingual is not None:  # the router's split: non-English rows by the multilingual model
                _, foreign_probs = cross_validate(variant, texts, multilingual, labels, folds, extra_ml)
                probs[foreign] = foreign_probs[foreign]
            argmax = [names[int(i)] for i in probs.argmax(axis=1)]
            start_thresholds = {n: 0.5 for n in names if n != NONE}
            thresholds = fit_thresholds(names, probs, rules, labels, start_thresholds)
            pred = predict(names, probs, rules, thresholds)
            full = metrics(labels, pred)
            hits = np.array([p == g for p, g in zip(pred, labels, strict=True)])
            report[name][scheme] = {
                "argmax_accuracy": round(float(np.mean([a == g for a, g in zip(argmax, labels, strict=True)])), 4),
                "accuracy": full["accuracy"],
                "macro_f1": full["macro_f1"],
                "oos_recall": full["oos_recall"],
                "accuracy_english": round(float(hits[~foreign].mean()), 4),
                "accuracy_non_english": round(float(hits[foreign].mean()), 4) if foreign.any() else None,
                "seconds": round(time.perf_counter() - start, 1),
            }
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
