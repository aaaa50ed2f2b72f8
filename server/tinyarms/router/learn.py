"""`tinyarms router fit --from-log`: learn from the user's own traffic, without getting worse.

Two models learn from what the user did:
- the route classifier, from route corrections (corrections.py): each corrected request joins
  its route's examples (`routes.NAME.more_utterances`, or `router.more_out_of_scope` for "no
  route"), so it routes as corrected from then on and similar requests lean that way;
- the difficulty model (difficulty.py), from outcomes in the trace: escalations, "try a stronger
  tier" re-asks, thumbs-down, rejected edits. Its log-loss is reported on the last fifth of the
  labelled requests for a model fitted on the rest, against the model in force.
Before anything is written the route classifier is scored on the shipped held-out sets, before
and after; a fit that loses more than one point of accuracy on any of them is refused (unless
forced): a few mislabelled corrections must not undo the shipped routes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
from attrs import define

from tinyarms.router import difficulty
from tinyarms.router.classifier import NONE
from tinyarms.router.fit import load_labelled, predict, scored
from tinyarms.router.router import Router

if TYPE_CHECKING:
    from tinyarms.config import Config
    from tinyarms.config.schema import Difficulty
    from tinyarms.router.encoder import Encoder

MAX_DROP = 0.01  # one point of held-out accuracy
DATA = Path(__file__).resolve().parents[3] / "tests" / "data"
HELDOUT = ("router_heldout.tsv", "router_heldout2.tsv", "router_heldout_multilingual.tsv")


def heldout_sets(folder: Path | None = None) -> dict[str, list[tuple[str, str]]]:
    """The shipped held-out sets that exist (a source checkout has them; an installed wheel may not)."""
    folder = folder or DATA
    return {name: load_labelled(folder / name) for name in HELDOUT if (folder / name).is_file()}


def with_corrections(config: Config, corrections: list[tuple[str | None, str]]) -> tuple[Config, dict[str, list[str]]]:
    """The config with each corrected request added to its route's examples; and what was added, by route."""
    added: dict[str, list[str]] = {}
    routes = dict(config.routes)
    oos = list(config.router.more_out_of_scope)
    for route, text in corrections:
        if route is None or route == NONE:
            if text not in oos and text not in config.router.out_of_scope:
                oos.append(text)
                added.setdefault(NONE, []).append(text)
            continue
        spec = routes.get(route)
        if spec is None or text in spec.utterances or text in spec.more_utterances:
            continue
        routes[route] = attrs.evolve(spec, more_utterances=[*spec.more_utterances, text])
        added.setdefault(route, []).append(text)
    return attrs.evolve(config, routes=routes, router=attrs.evolve(config.router, more_out_of_scope=oos)), added


@define
class LearnResult:
    corrections: int
    added: dict[str, list[str]]
    before: dict[str, float]  # held-out set -> accuracy
    after: dict[str, float]
    refused: str | None  # why the route fit is not written, or None
    corrected_routed: dict[str, int]  # of the corrections: how many route as corrected, before / after
    difficulty: Difficulty
    difficulty_report: dict[str, Any]
    config: Config  # the refitted config (routes and difficulty)

    def updates(self) -> dict[tuple[str, ...], Any]:
        """The user-file keys to write."""
        out: dict[tuple[str, ...], Any] = {}
        if self.refused is None:
            for route in self.added:
                if route == NONE:
                    out[("router", "more_out_of_scope")] = list(self.config.router.more_out_of_scope)
                else:
                    out[("routes", route, "more_utterances")] = list(self.config.routes[route].more_utterances)
        if self.difficulty.fitted_on:
            out[("router", "difficulty")] = attrs.asdict(self.difficulty)
        return out


def _accuracy(router: Router, sets: Mapping[str, list[tuple[str, str]]]) -> dict[str, float]:
    """Held-out accuracy of the rules + embedding stages, in one batch per set (vectors cached on disk)."""
    thresholds = {name: spec.threshold for name, spec in router.specs.items()}
    out = {}
    for name, rows in sets.items():
        labels, probs, rules = scored(router, [text for _, text in rows])
        pred = predict(labels, probs, rules, thresholds)
        out[name] = round(sum(p == gold for p, (gold, _) in zip(pred, rows, strict=True)) / len(rows), 4)
    return out


def _routed_as_corrected(router: Router, corrections: list[tuple[str | None, str]]) -> int:
    return sum((router.route(text).route or NONE) == (route or NONE) for route, text in corrections)


def learn(
    config: Config, encoder: Encoder, corrections: list[tuple[str | None, str]], records: Sequence[Mapping[str, Any]],
    sets: Mapping[str, list[tuple[str, str]]], *, force: bool = False, multilingual: Encoder | None = None,
) -> LearnResult:  # fmt: skip
    fitted, added = with_corrections(config, corrections)
    before_router = Router(config, encoder, multilingual=multilingual)
    before = _accuracy(before_router, sets)
    after_router = Router(fitted, encoder, multilingual=multilingual) if added else before_router
    after = _accuracy(after_router, sets) if added else dict(before)
    worst = max((before[name] - after[name] for name in sets), default=0.0)
    refused = None
    if worst > MAX_DROP + 1e-9 and not force:
        name = max(sets, key=lambda n: before[n] - after[n])
        refused = (
            f"held-out accuracy on {name} would drop from {before[name]:.4f} to {after[name]:.4f} "
            f"(more than {MAX_DROP:.0%}); not written (--force writes it anyway)"
        )
    routed = {
        "before": _routed_as_corrected(before_router, corrections),
        "after": _routed_as_corrected(after_router, corrections),
    }
    weights, report = fit_difficulty(config, records)
    final = fitted if refused is None else config
    if weights.fitted_on:
        final = attrs.evolve(final, router=attrs.evolve(final.router, difficulty=weights))
    return LearnResult(
        corrections=len(corrections), added=added, before=before, after=after, refused=refused,
        corrected_routed=routed, difficulty=weights, difficulty_report=report, config=final,
    )  # fmt: skip


def cheap_tiers(config: Config) -> dict[str, str]:
    from tinyarms.router.strength import ROLES

    return {role: config.roles.get(role).tier for role in ROLES if config.roles.get(role).strong()}


def fit_difficulty(config: Config, records: Sequence[Mapping[str, Any]]) -> tuple[Difficulty, dict[str, Any]]:
    """Fit on the trace's labelled requests; log-loss on the last fifth for a fit on the rest vs the current model."""
    rows, labels = difficulty.training_data(records, cheap_tiers(config))
    report: dict[str, Any] = {"labelled_requests": len(rows)}
    report["bad_share"] = round(sum(labels) / len(labels), 4) if labels else None
    if len(rows) < difficulty.MIN_OUTCOMES or len(set(labels)) < 2:
        report["kept"] = f"fewer than {difficulty.MIN_OUTCOMES} labelled requests with both outcomes: the model stays"
        return config.router.difficulty, report
    cut = max(1, len(rows) * 4 // 5)
    trial = difficulty.fit(rows[:cut], labels[:cut])
    if trial.fitted_on:
        report["log_loss_last_fifth"] = {
            "current": difficulty.log_loss(config.router.difficulty, rows[cut:], labels[cut:]),
            "fitted_on_the_rest": difficulty.log_loss(trial, rows[cut:], labels[cut:]),
        }
    return difficulty.fit(rows, labels), report
