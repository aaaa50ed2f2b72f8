"""Compare router designs on a DEVELOPMENT set (never a held-out one); prints JSON.

Usage: python scripts/dev_router.py [--set tests/data/router_dev_multilingual.tsv] [--augment 0,1,2]
       [--cv] [--ngram-weight 1.0] [--drop FILE] [--add FILE] [--halves]

Since issue 16's third round the development set and a second blind batch are training rows, so a
blind estimate takes `--drop`: `--set B --drop B` trains without batch B (a writer's rows) and scores
it, i.e. leave-one-writer-out (the old dev set: `--set tests/data/router_dev_multilingual.tsv --drop`
the same file). `--add FILE` puts a file's rows into training; `--halves` scores the set in two
grouped halves, each by a model trained with the other half added (what adding such rows is worth).

For each augmentation setting (router/augment.py: copies per training row), one classifier per
encoder (MiniLM, USE multilingual) is trained on the shipped training rows (the config's routes,
as the router does) and every request of the set is scored through the whole pipeline (a route's
own example, keyword rules, the classifier, thresholds from the config) under each way of
combining the two encoders:
- `switch`: MiniLM for English requests, USE for the rest (router/language.py's guess);
- `average-W`: both for every request, probabilities averaged, MiniLM's weight W;
- `average-W/switch`: averaged for English requests, USE alone for the rest;
- `minilm`, `use`: one encoder for every request.
Accuracy overall, on the English and the non-English part, and out-of-scope recall.
`--cv`: the same designs by grouped 5-fold cross-validation on the training rows, with the
augmented copies of a fold's test rows kept out of its training side.
`--fit-thresholds` (with `--cv`): per-route thresholds fitted (router/fit.py's coordinate ascent,
OOS recall floor `--oos-floor`, 0.9 as in `router fit`) on the `switch` design's out-of-fold
probabilities, i.e. on training rows alone, then the dev set scored with them.
`--errors`: the `switch` design's dev misroutes.
Design 7's other knobs (all measured flat or worse, see notes/issue-16.md): `--none-floor A,B`
(an unsure `none` under the floor takes the closest route), `--rule-report` (keyword rule against
the classifier where the rule fires), `--l2`, `--steps`, `--min-english`, and `--prose`,
`--prose-embedding`, `--language-prose` (scripts/prose_view.py: code spans folded).
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

from cv_router import groups_of  # noqa: E402  (scripts/cv_router.py: grouped folds)
from prose_view import prose  # noqa: E402  (scripts/prose_view.py: an experiment, not in the router)
from tinyarms.config import ConfigInputs, load_config  # noqa: E402
from tinyarms.router import language  # noqa: E402
from tinyarms.router.augment import variants  # noqa: E402
from tinyarms.router.classifier import NGRAM_WEIGHT, NONE, train  # noqa: E402
from tinyarms.router.encoder import Encoder, cache_dir, load_encoder  # noqa: E402
from tinyarms.router.fit import fit_thresholds, load_labelled, metrics, predict  # noqa: E402
from tinyarms.router.language import is_english  # noqa: E402
from tinyarms.router.router import Router, examples, normalise, training_rows  # noqa: E402

Combine = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]


def combiners() -> dict[str, Combine]:
    out: dict[str, Combine] = {
        "switch": lambda m, u, en: np.where(en[:, None], m, u),
        "minilm": lambda m, u, en: m,
        "use": lambda m, u, en: u,
    }
    for w in (0.3, 0.5, 0.7):
        out[f"average-{w}"] = lambda m, u, en, w=w: w * m + (1 - w) * u
        out[f"average-{w}/switch"] = lambda m, u, en, w=w: np.where(en[:, None], w * m + (1 - w) * u, u)
    # A prior on `none` (out of scope): its probability scaled before the argmax.
    for k in (0.7, 1.4):
        for name in ("average-0.3", "average-0.5/switch"):
            out[f"{name}*none{k}"] = lambda m, u, en, k=k, base=out[name]: scale_none(base(m, u, en), k)
    return out


NONE_COLUMN = 4  # sorted labels: document explain fix generate none plan refactor review test


def scale_none(probs: np.ndarray, k: float) -> np.ndarray:
    out = probs.copy()
    out[:, NONE_COLUMN] *= k
    return out / out.sum(axis=1, keepdims=True)


def with_variants(texts: list[str], labels: list[str], copies: int) -> tuple[list[str], list[str], list[int]]:
    """Rows plus their variants, and for each output row the index of the row it came from."""
    out_t, out_l, origin = list(texts), list(labels), list(range(len(texts)))
    if copies:
        for i, (text, label) in enumerate(zip(texts, labels, strict=True)):
            for varied in variants(text, label, copies):
                out_t.append(varied)
                out_l.append(label)
                origin.append(i)
    return out_t, out_l, origin


def probs_for(tr_v: dict[str, np.ndarray], tr_t: list[str], tr_l: list[str], te_v: dict[str, np.ndarray],
              te_t: list[str], vocab: list[str], weight: float) -> tuple[list[str], dict[str, np.ndarray]]:  # fmt: skip
    """Each encoder's classifier, trained on (vectors, texts, labels), on the test rows."""
    out = {}
    names: list[str] = []
    for key, vectors in tr_v.items():
        model = train(vectors, tr_l, tr_t, vocabulary_texts=vocab, ngram_weight=weight, **TRAIN)
        out[key] = model.probabilities(te_v[key], te_t)
        names = model.labels
    return names, out


def encode(encoders: dict[str, Encoder], texts: list[str]) -> dict[str, np.ndarray]:
    """Vectors per text, kept on disk per text (the variants of one setting are mostly another's)."""
    out = {}
    for key, encoder in encoders.items():
        path = cache_dir() / "dev-router" / f"{encoder.key}.npz"
        known: dict[str, np.ndarray] = {}
        if path.is_file():
            with np.load(path) as data:
                known = dict(zip([str(t) for t in data["texts"]], data["vectors"], strict=True))
        missing = sorted({t for t in texts if t not in known})
        if missing:
            known.update(zip(missing, encoder.encode(missing), strict=True))
            path.parent.mkdir(parents=True, exist_ok=True)
            np.savez(path, texts=np.array(list(known), dtype=str), vectors=np.stack(list(known.values())))
        out[key] = np.stack([known[t] for t in texts]).astype(np.float32)
    return out


def pipeline(names: list[str], probs: np.ndarray, texts: list[str], router: Router, own: dict[str, str | None],
             thresholds: dict[str, float]) -> list[str]:  # fmt: skip
    pred = []
    for row, text in zip(probs, texts, strict=True):
        clean = normalise(text)
        if clean.lower() in own:
            pred.append(own[clean.lower()] or NONE)
            continue
        hit = router.rules.slash(clean) or router.rules.keyword(clean)
        if hit is not None and hit.route is not None:
            pred.append(hit.route)
            continue
        best = names[int(row.argmax())]
        if best == NONE and row.max() < NONE_FLOOR:  # an unsure `none`: the closest route instead
            rest = row.copy()
            rest[names.index(NONE)] = -1.0
            best = names[int(rest.argmax())]
            pred.append(best if rest.max() >= thresholds.get(best, 0.5) else NONE)
            continue
        pred.append(best if best != NONE and row.max() >= thresholds.get(best, 0.5) else NONE)
    return pred


NONE_FLOOR = 0.0  # --none-floor
TRAIN: dict[str, float] = {}  # --l2, --steps, --scale


def floors(out: dict[str, Any], args: Any, names: list[str], probs: np.ndarray, texts: list[str],
           router: Router, own: dict[str, str | None], thresholds: dict[str, float], gold: list[str],
           english: np.ndarray) -> None:  # fmt: skip
    """The switch design under each `--none-floor`."""
    global NONE_FLOOR
    for floor in [float(f) for f in args.none_floor.split(",")]:
        NONE_FLOOR = floor
        out[f"switch/none-floor-{floor}"] = score(gold, pipeline(names, probs, texts, router, own, thresholds), english)
    NONE_FLOOR = 0.0
    if args.rule_report:  # the keyword rule against the classifier, on the rows the rule decides
        rows = [(i, router.rules.keyword(normalise(t))) for i, t in enumerate(texts)]
        rows = [(i, hit.route) for i, hit in rows if hit is not None and hit.route is not None]
        model = [names[int(probs[i].argmax())] for i, _ in rows]
        out["keyword_rule"] = {
            "fires": len(rows), "rule_right": sum(gold[i] == r for i, r in rows),
            "classifier_right": sum(gold[i] == m for (i, _), m in zip(rows, model, strict=True)),
            "wrong": [f"{gold[i]}->{r} (model {m}): {texts[i][:80]}" for (i, r), m in zip(rows, model, strict=True)
                      if gold[i] != r],
        }  # fmt: skip


def score(gold: list[str], pred: list[str], english: np.ndarray) -> dict[str, Any]:
    hits = np.array([g == p for g, p in zip(gold, pred, strict=True)])
    m = metrics(gold, pred)
    return {
        "accuracy": m["accuracy"], "oos_recall": m["oos_recall"],
        "english": round(float(hits[english].mean()), 4),
        "non_english": round(float(hits[~english].mean()), 4) if (~english).any() else None,
    }  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", default=str(REPO / "tests" / "data" / "router_dev_multilingual.tsv"))
    parser.add_argument("--augment", default="0,1")
    parser.add_argument("--ngram-weight", type=float, default=NGRAM_WEIGHT)
    parser.add_argument("--cv", action="store_true", help="also grouped 5-fold CV on the training rows")
    parser.add_argument("--fit-thresholds", action="store_true", help="fit thresholds on the CV probabilities")
    parser.add_argument("--oos-floor", type=float, default=0.9, help="--fit-thresholds: OOS recall floor")
    parser.add_argument("--prose", action="store_true", help="classifiers read router/prose.py's view of each text")
    parser.add_argument("--prose-embedding", action="store_true", help="only the encoders read the prose view")
    parser.add_argument("--language-prose", action="store_true", help="guess the language on the words outside code")
    parser.add_argument("--none-floor", default="0", help="comma list: `none` under this takes the closest route")
    parser.add_argument("--rule-report", action="store_true", help="keyword rule vs classifier where the rule fires")
    parser.add_argument("--l2", type=float, default=1e-3, help="the classifiers' L2 penalty (train's default 1e-3)")
    parser.add_argument("--steps", type=int, default=400, help="gradient steps (train's default 400)")
    parser.add_argument("--min-english", type=float, default=language.MIN_ENGLISH, help="language.py's English floor")
    parser.add_argument("--errors", action="store_true", help="print the switch design's dev misroutes")
    parser.add_argument("--add", action="append", default=[],
                        help="a labelled file whose rows join the training rows (repeatable)")  # fmt: skip
    parser.add_argument("--drop", action="append", default=[],
                        help="a labelled file whose rows leave the training rows (repeatable): score a writer's batch "
                             "with a model that never saw it")  # fmt: skip
    parser.add_argument("--halves", action="store_true",
                        help="score the set in two grouped halves, each trained with the other one added")  # fmt: skip
    parser.add_argument("--vocabulary", choices=("originals", "all"), default="all",
                        help="fit the n-gram vocabulary on the original rows only, or with the variants")  # fmt: skip
    args = parser.parse_args()
    if "heldout" in Path(args.set).name:
        parser.error("this script chooses designs: give it a development set, never a held-out one")
    TRAIN.update(l2=args.l2, steps=args.steps)

    language.MIN_ENGLISH = args.min_english
    config = load_config(ConfigInputs(user_file=Path(os.devnull), env={"TINYARMS_ROUTER__CACHE_SIZE": "0"})).config
    assert config is not None
    encoders = {"minilm": load_encoder(config.router.encoder), "use": load_encoder(config.router.multilingual_encoder)}
    router = Router(config, None)  # rules and thresholds only
    own = examples(config)
    thresholds = {name: spec.threshold for name, spec in router.specs.items()}
    texts, labels = training_rows(config)
    for batch in args.drop:
        gone = {normalise(t).lower() for _, t in load_labelled(Path(batch))}
        keep = [i for i, t in enumerate(texts) if normalise(t).lower() not in gone]
        texts, labels = [texts[i] for i in keep], [labels[i] for i in keep]
        own = {k: v for k, v in own.items() if k not in gone}
    for extra in args.add:
        if "heldout" in Path(extra).name:
            parser.error("--add takes training or development rows, never a held-out set")
        for label, text in load_labelled(Path(extra)):
            texts.append(text)
            labels.append(label)
            own.setdefault(normalise(text).lower(), None if label == NONE else label)
    rows = load_labelled(Path(args.set))
    dev_t, gold = [t for _, t in rows], [label for label, _ in rows]
    guess = (lambda t: is_english(prose(t, keep_places=False))) if args.language_prose else is_english
    dev_en = np.array([guess(t) for t in dev_t])
    view = prose if args.prose or args.prose_embedding else (lambda t: t)
    grams_view = prose if args.prose else (lambda t: t)
    dev_p = [grams_view(t) for t in dev_t]
    dev_v = encode(encoders, [view(t) for t in dev_t])
    report: dict[str, Any] = {"set": Path(args.set).name, "n": len(rows), "non_english": int((~dev_en).sum()),
                              "train_rows": len(texts), "ngram_weight": args.ngram_weight}  # fmt: skip
    for copies in [int(c) for c in args.augment.split(",")]:
        start = time.perf_counter()
        tr_t, tr_l, origin = with_variants(texts, labels, copies)
        tr_p = [grams_view(t) for t in tr_t]
        vocab = [grams_view(t) for t in texts] if args.vocabulary == "originals" else tr_p
        tr_v = encode(encoders, [view(t) for t in tr_t])
        names, probs = probs_for(tr_v, tr_p, tr_l, dev_v, dev_p, vocab, args.ngram_weight)
        entry: dict[str, Any] = {"train_rows": len(tr_t)}
        for name, combine in combiners().items():
            pred = pipeline(names, combine(probs["minilm"], probs["use"], dev_en), dev_t, router, own, thresholds)
            entry[name] = score(gold, pred, dev_en)
        switch = combiners()["switch"](probs["minilm"], probs["use"], dev_en)
        floors(entry, args, names, switch, dev_t, router, own, thresholds, gold, dev_en)
        if args.errors:
            pred = pipeline(names, switch, dev_t, router, own, thresholds)
            for g, p, t, en, row in zip(gold, pred, dev_t, dev_en, switch, strict=True):
                if g != p:
                    top = ", ".join(f"{names[j]} {row[j]:.2f}" for j in np.argsort(-row)[:3])
                    print(f"{'EN' if en else 'xx'}\t{g}->{p}\t[{top}]\t{t}", file=sys.stderr)
        print(json.dumps({f"augment_{copies}": entry}), file=sys.stderr)
        if args.halves:
            entry["halves"] = halves(
                encoders, texts, labels, dev_t, gold, dev_en, copies, args, router, own, thresholds
            )
            print(json.dumps({f"augment_{copies}_halves": entry["halves"]}), file=sys.stderr)
        if args.cv:
            entry["cv"] = cross_validate(encoders, texts, labels, copies, args, router, thresholds)
            print(json.dumps({f"augment_{copies}_cv": entry["cv"]}), file=sys.stderr)
            if args.fit_thresholds:
                fitted = entry["cv"].pop("_fitted")
                pred = pipeline(names, switch, dev_t, router, own, fitted["thresholds"])
                fitted["dev_switch"] = score(gold, pred, dev_en)
                entry["fitted_thresholds"] = fitted
                print(json.dumps({f"augment_{copies}_fitted": fitted}), file=sys.stderr)
            entry["cv"].pop("_fitted", None)
        entry["seconds"] = round(time.perf_counter() - start, 1)
        report[f"augment_{copies}"] = entry
    print(json.dumps(report, indent=2))
    return 0


def halves(encoders: dict[str, Encoder], texts: list[str], labels: list[str], dev_t: list[str], gold: list[str],
           dev_en: np.ndarray, copies: int, args: Any, router: Router, own: dict[str, str | None],
           thresholds: dict[str, float]) -> dict[str, Any]:  # fmt: skip
    """The set in two grouped halves: each scored by classifiers trained on the training rows plus the
    other half (and their variants): what adding rows like these to the training data is worth."""
    groups = groups_of(gold)
    half_of = (np.random.default_rng(1).permutation(groups.max() + 1) % 2)[groups]
    preds: dict[str, list[str]] = {}
    for half in (0, 1):
        test = np.flatnonzero(half_of == half)
        more = np.flatnonzero(half_of != half)
        tr_t, tr_l, _ = with_variants(texts + [dev_t[i] for i in more], labels + [gold[i] for i in more], copies)
        te_t = [dev_t[i] for i in test]
        tr_v, te_v = encode(encoders, tr_t), encode(encoders, te_t)
        names, probs = probs_for(tr_v, tr_t, tr_l, te_v, te_t, tr_t, args.ngram_weight)
        mine = {**own, **{normalise(dev_t[i]).lower(): gold[i] for i in more}}
        for name, combine in combiners().items():
            pred = pipeline(names, combine(probs["minilm"], probs["use"], dev_en[test]), te_t, router, mine, thresholds)
            preds.setdefault(name, [""] * len(dev_t))
            for i, p in zip(test, pred, strict=True):
                preds[name][i] = p
    return {name: score(gold, pred, dev_en) for name, pred in preds.items()}


def cross_validate(encoders: dict[str, Encoder], texts: list[str], labels: list[str], copies: int,
                   args: Any, router: Router, thresholds: dict[str, float]) -> dict[str, Any]:  # fmt: skip
    """Grouped 5-fold (runs of 6 rows of one label), variants of test rows never in training."""
    groups = groups_of(labels)
    fold_of = (np.random.default_rng(0).permutation(groups.max() + 1) % 5)[groups]
    view = prose if args.prose or args.prose_embedding else (lambda t: t)
    grams_view = prose if args.prose else (lambda t: t)
    raw_t, all_l, origin = with_variants(texts, labels, copies)
    all_t = [grams_view(t) for t in raw_t]
    all_v = encode(encoders, [view(t) for t in raw_t])
    origin_fold = fold_of[np.array(origin)]
    english = np.array([is_english(t) for t in texts])
    probs: dict[str, np.ndarray] = {}
    names: list[str] = sorted(set(labels) | {NONE})
    for fold in range(5):
        keep = np.flatnonzero(origin_fold != fold)
        test = np.flatnonzero(fold_of == fold)
        tr_t, tr_l = [all_t[i] for i in keep], [all_l[i] for i in keep]
        vocab = [all_t[i] for i in np.flatnonzero(fold_of != fold)] if args.vocabulary == "originals" else tr_t
        tr_v = {key: v[keep] for key, v in all_v.items()}
        te_v = {key: v[test] for key, v in all_v.items()}  # the originals come first in all_t
        got, fold_probs = probs_for(tr_v, tr_t, tr_l, te_v, [all_t[i] for i in test], vocab, args.ngram_weight)
        for key, p in fold_probs.items():
            probs.setdefault(key, np.zeros((len(texts), len(names)), dtype=np.float32))
            for j, name in enumerate(got):
                probs[key][test, names.index(name)] = p[:, j]
    out: dict[str, Any] = {}
    for name, combine in combiners().items():
        pred = pipeline(names, combine(probs["minilm"], probs["use"], english), texts, router, {}, thresholds)
        out[name] = score(labels, pred, english)
    switch = combiners()["switch"](probs["minilm"], probs["use"], english)
    floors(out, args, names, switch, texts, router, {}, thresholds, labels, english)
    if args.fit_thresholds:
        rules = []
        for text in texts:
            clean = normalise(text)
            hit = router.rules.slash(clean) or router.rules.keyword(clean)
            rules.append(hit.route if hit is not None and hit.route is not None else None)
        fitted = fit_thresholds(names, switch, rules, labels, thresholds, min_oos_recall=args.oos_floor)
        cv_pred = predict(names, switch, rules, fitted)
        out["_fitted"] = {"thresholds": fitted, "cv_switch": score(labels, cv_pred, english)}
    return out


if __name__ == "__main__":
    sys.exit(main())
