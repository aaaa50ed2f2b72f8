"""Benchmark the router; prints JSON.

In one run, on tests/data/router_heldout.tsv (never fitted on; tests/data/router_heldout2.tsv,
written blind by another author, is reported beside it):
- tinyarms' router (rules -> ONNX int8 MiniLM -> softmax regression, fitted thresholds):
  accuracy, macro-F1, out-of-scope recall, which stage decided, and warm per-decision
  latency p50/p95 with the LRU off (every query pays for its encode) and for an LRU hit;
- the baseline: the same MiniLM through sentence-transformers (torch), plain nearest-utterance
  matching over the same route utterances with a fixed 0.5 cosine threshold (semantic-router's
  default for MiniLM), accuracy and latency, and the ratios;
- encode latency for each encoder option (torch 1 and 2 threads, ONNX fp32, ONNX int8).

`--llm` adds the LLM stage measured on the TRAINING set: for the rows the embeddings are unsure
of (out-of-fold), how often Gemma 3 270M picks right versus the fallback.

The machine is shared and noisy: compare medians and ratios measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "server"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from tinyarms.config import ConfigInputs, load_config  # noqa: E402
from tinyarms.router.classifier import NONE  # noqa: E402
from tinyarms.router.encoder import Encoder, load_encoder  # noqa: E402
from tinyarms.router.fit import evaluate, load_labelled, metrics  # noqa: E402
from tinyarms.router.router import Router, route_specs  # noqa: E402


def percentiles(times: list[float]) -> dict[str, float]:
    ordered = sorted(times)
    return {
        "p50": round(statistics.median(ordered), 3),
        "p95": round(ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))], 3),
    }


def timed(fn: Any, items: list[str], rounds: int = 3) -> list[float]:
    times = []
    for _ in range(rounds):
        for item in items:
            start = time.perf_counter()
            fn(item)
            times.append((time.perf_counter() - start) * 1000)
    return times


def baseline(encoder: Encoder, config: Any, rows: list[tuple[str, str]], threshold: float = 0.5) -> dict[str, Any]:
    names, utterances = [], []
    for spec in route_specs(config):
        names += [spec.name] * len(spec.utterances)
        utterances += spec.utterances
    matrix = encoder.encode(utterances)

    def decide(text: str) -> str:
        sims = matrix @ encoder.encode([text])[0]
        best = int(sims.argmax())
        return names[best] if sims[best] >= threshold else NONE

    pred = [decide(text) for _, text in rows]
    result = metrics([label for label, _ in rows], pred)
    result.pop("confusion")
    result["threshold"] = threshold
    result["latency_ms"] = percentiles(timed(decide, [text for _, text in rows]))
    return result


def llm_on_training(config: Any, encoder: Encoder) -> dict[str, Any]:
    """Cross-validated on the training rows: does the LLM stage beat the fallback where the embeddings are unsure?"""
    from tinyarms.router.classifier import out_of_fold
    from tinyarms.router.encoder import cached_encode
    from tinyarms.router.llm import load_llm
    from tinyarms.router.router import training_rows

    texts, labels = training_rows(config)
    names, probs = out_of_fold(cached_encode(encoder, texts), labels, texts)
    thresholds = {s.name: s.threshold for s in route_specs(config)}
    llm = load_llm(config)
    route_names = [s.name for s in route_specs(config)]
    unsure, fallback_right, llm_right, times = 0, 0, 0, []
    for text, gold, row in zip(texts, labels, probs, strict=True):
        best = names[int(row.argmax())]
        if best == NONE or row.max() >= thresholds[best]:
            continue
        unsure += 1
        fallback_right += gold == NONE
        start = time.perf_counter()
        choice, _ = llm.classify(text, [*route_names, NONE])
        times.append((time.perf_counter() - start) * 1000)
        llm_right += choice == gold
    # Also the LLM alone on every training row: how good a classifier is it at all?
    sample = list(zip(texts, labels, strict=True))[::10]
    alone = sum(llm.classify(t, [*route_names, NONE])[0] == g for t, g in sample)
    return {
        "unsure_rows": unsure,
        "fallback_correct": fallback_right,
        "llm_correct": llm_right,
        "llm_alone_accuracy_on_every_10th_training_row": round(alone / len(sample), 4),
        "llm_latency_ms": percentiles(times) if times else None,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--heldout", default=str(REPO / "tests" / "data" / "router_heldout.tsv"))
    parser.add_argument(
        "--heldout2",
        default=str(REPO / "tests" / "data" / "router_heldout2.tsv"),
        help="a second held-out set, written blind by another author (reported beside the first)",
    )
    parser.add_argument("--llm", action="store_true", help="also measure the LLM stage on the training set")
    args = parser.parse_args()
    rows = load_labelled(Path(args.heldout))
    texts = [text for _, text in rows]
    empty_user = Path(os.devnull)
    result = load_config(ConfigInputs(user_file=empty_user, env={"TINYARMS_ROUTER__CACHE_SIZE": "0"}))
    config = result.config
    assert config is not None, result.problems

    start = time.perf_counter()
    encoder = load_encoder(config.router.encoder, config.router.backend, config.router.threads)
    router = Router(config, encoder)
    load_s = time.perf_counter() - start
    for text in texts[:20]:  # warm up
        router.route(text)

    quality = evaluate(router, rows)
    latency = timed(router.route, texts)
    lru_config = load_config(ConfigInputs(user_file=empty_user, env={})).config
    assert lru_config is not None
    lru_router = Router(lru_config, encoder)
    for text in texts:
        lru_router.route(text)
    lru_hit = timed(lru_router.route, texts)
    rule_only = timed(lambda t: router.rules.slash(t) or router.rules.keyword(t), texts)

    torch_encoder = load_encoder(config.router.encoder, "torch", 1)
    base = baseline(torch_encoder, config, rows)
    # The same nearest-utterance rule on tinyarms' encoder, to separate encoder from method.
    base_same_encoder = baseline(encoder, config, rows)
    base_same_encoder.pop("latency_ms")

    encoders: dict[str, Any] = {}
    probe = texts[:60]
    for name, backend, threads in (("torch-1-thread", "torch", 1), ("torch-2-threads", "torch", 2),
                                   ("onnx-fp32", "onnx", 1), ("onnx-int8", "onnx-int8", 1)):  # fmt: skip
        same = (backend, threads) == ("torch", 1)
        enc = torch_encoder if same else load_encoder(config.router.encoder, backend, threads)
        enc.encode(probe[:5])
        encoders[name] = percentiles(timed(lambda t, e=enc: e.encode([t]), probe, rounds=2))
    ours = percentiles(latency)
    report: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "loadavg_1m": round(os.getloadavg()[0], 2)},
        "heldout": {"n": len(rows), "file": str(Path(args.heldout).relative_to(REPO))},
        "tinyarms": {
            "encoder": f"{config.router.encoder} ({config.router.backend}, {config.router.threads} thread)",
            "accuracy": quality["accuracy"],
            "macro_f1": quality["macro_f1"],
            "oos_recall": quality["oos_recall"],
            "stages": quality["stages"],
            "latency_ms_per_decision_lru_off": ours,
            "latency_ms_lru_hit": percentiles(lru_hit),
            "latency_ms_rule_stage_only": percentiles(rule_only),
            "load_s": round(load_s, 2),
        },
        "baseline_nearest_utterance_0.5": base,
        "baseline_rule_on_tinyarms_encoder": base_same_encoder,
        "ratios": {
            "accuracy_vs_baseline": round(quality["accuracy"] / max(base["accuracy"], 1e-9), 2),
            "oos_recall_vs_baseline": round((quality["oos_recall"] or 0) / max(base["oos_recall"] or 1e-9, 1e-9), 2),
            "baseline_p50_over_tinyarms_p50": round(base["latency_ms"]["p50"] / max(ours["p50"], 1e-9), 2),
        },
        "encode_latency_ms": encoders,
    }
    if args.heldout2 and Path(args.heldout2).is_file():
        rows2 = load_labelled(Path(args.heldout2))
        second = evaluate(router, rows2)
        base2 = baseline(torch_encoder, config, rows2)
        report["heldout2"] = {
            "file": str(Path(args.heldout2).relative_to(REPO)),
            "n": len(rows2),
            "tinyarms": {k: second[k] for k in ("accuracy", "macro_f1", "oos_recall", "stages")},
            "baseline_nearest_utterance_0.5": {k: base2[k] for k in ("accuracy", "macro_f1", "oos_recall")},
        }
    if args.llm:
        report["llm_stage_on_training_cv"] = llm_on_training(config, encoder)
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    sys.exit(main())
