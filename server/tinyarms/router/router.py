"""The router: a request's text to a `Decision`, cheapest stage first.

1. explicit: a slash command (`/explain ...`) names the route.
2. rule: one route's high-precision keywords match, and no other route's do.
3. embedding: a sentence vector + n-gram TF-IDF -> softmax regression over the routes and `none`; a route
   is taken when its probability reaches the route's (fitted) threshold. Two encoders, each with
   its own classifier trained on every training row (and `router.augment` typed-like variants, augment.py):
   English requests get MiniLM's (`combine = "average"`: the mean of both), the rest the
   multilingual encoder's (language.py decides, ~0.2 ms).
4. fallback: nothing confident: the configured fallback role (`chat`), route None.
Then strong or weak (strength.py): for chat and edit with `strong_share` set, a hard request goes
straight to the role's strong tier.

Recent route decisions are kept in an LRU keyed by the normalised text.

There is no LLM stage for low confidence any more (issue 16): measured on the three held-out
sets with Gemma 3 270M picking a route for what fell under its threshold, it decided 1 request
of 221, 0 of 250 and 1 of 343, and cost a point of accuracy on the first (0.9729 -> 0.9683);
with USE for every request it decided 3 and 2 and gained nothing.
"""

from __future__ import annotations

import logging
import re
import threading
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import attrs
import numpy as np
from attrs import define

from tinyarms.router import strength
from tinyarms.router.augment import augment
from tinyarms.router.classifier import NONE, Classifier, cached_train
from tinyarms.router.decision import Decision, Stage
from tinyarms.router.difficulty import estimate_tokens
from tinyarms.router.encoder import Encoder, cache_dir, cached_encode, load_encoder
from tinyarms.router.language import is_english
from tinyarms.router.rules import Rules

if TYPE_CHECKING:
    from tinyarms.config import Config

log = logging.getLogger(__name__)

MAX_CHARS = 2000  # routing looks at the start of a request; a 100 kB paste is cut here
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\ufffd]+")


@define
class RouteSpec:
    name: str
    role: str
    tier: str
    threshold: float
    utterances: list[str]


def route_specs(config: Config) -> list[RouteSpec]:
    """The enabled routes, with utterance lists merged and tiers resolved."""
    specs = []
    for name, route in sorted(config.routes.items()):
        if not route.enabled:
            continue
        tier = route.tier or config.roles.get(route.role).tier
        specs.append(RouteSpec(name, route.role, tier, route.threshold, route.utterances + route.more_utterances))
    return specs


def training_rows(config: Config) -> tuple[list[str], list[str]]:
    """(texts, labels) the classifier learns from: route utterances and out-of-scope examples."""
    texts: list[str] = []
    labels: list[str] = []
    for spec in route_specs(config):
        texts += spec.utterances
        labels += [spec.name] * len(spec.utterances)
    oos = config.router.out_of_scope + config.router.more_out_of_scope
    return texts + oos, labels + [NONE] * len(oos)


def examples(config: Config) -> dict[str, str | None]:
    """Normalised, lower-cased example text -> its route (None: out of scope). The user's own
    additions (`more_utterances`, `more_out_of_scope`) are read last, so they win a clash."""
    out: dict[str, str | None] = {}
    specs = route_specs(config)
    for name, route in sorted(config.routes.items()):
        if route.enabled:
            out.update((normalise(u).lower(), name) for u in route.utterances)
    out.update((normalise(u).lower(), None) for u in config.router.out_of_scope)
    for spec in specs:
        out.update((normalise(u).lower(), spec.name) for u in config.routes[spec.name].more_utterances)
    out.update((normalise(u).lower(), None) for u in config.router.more_out_of_scope)
    out.pop("", None)
    return out


def normalise(text: str) -> str:
    """Control characters and runs of whitespace out; long requests cut to MAX_CHARS."""
    text = _CONTROL.sub(" ", text[: MAX_CHARS * 2])
    return " ".join(text.split())[:MAX_CHARS]


class Router:
    def __init__(self, config: Config, encoder: Encoder | None, *, multilingual: Encoder | None = None) -> None:
        """`encoder` embeds English requests (None: a disabled router, no embedding stage);
        `multilingual` (when given) every other language."""
        self.config = config
        self.encoder = encoder
        self.multilingual = multilingual
        self.specs = {spec.name: spec for spec in route_specs(config)}
        self.rules = Rules(list(self.specs))
        texts, labels = augment(*training_rows(config), copies=config.router.augment)
        self.classifier: Classifier | None = None
        self.multilingual_classifier: Classifier | None = None
        if self.specs and texts and encoder is not None:
            models = cache_dir() / "classifiers"
            self.classifier = cached_train(models, encoder.key, cached_encode(encoder, texts), labels, texts)
            if multilingual is not None:
                vectors = cached_encode(multilingual, texts)
                self.multilingual_classifier = cached_train(models, multilingual.key, vectors, labels, texts)
        self.examples = examples(config)
        self._cache: OrderedDict[str, Decision] = OrderedDict()
        self._lock = threading.Lock()
        self._executor: ThreadPoolExecutor | None = None  # the second encoder's thread ("average")

    # -- public API ----------------------------------------------------------------------

    def route(self, text: str, *, context_tokens: int = 0) -> Decision:
        """Never raises on user text: unusable input gets a fallback decision that says why.

        `context_tokens`: how much context (selection, files) goes with the request; it feeds the
        strong/weak decision, not the route.
        """
        if not isinstance(text, str):
            raise ValueError(f"route() needs text, got {type(text).__name__}")
        # The whole request's size, not just the part routing reads.
        return strength.apply(self.config, self._route(text), estimate_tokens(text), context_tokens)

    def _route(self, text: str) -> Decision:
        clean = normalise(text)
        if not clean:
            return self._fallback("the request is empty", 0.0, 0.0)
        slash = self.rules.slash(clean)
        if slash is not None:
            if slash.route is None:
                return self._decision(None, 1.0, 1.0, "explicit", slash.reason)
            return self._decision(slash.route, 1.0, 1.0, "explicit", slash.reason)
        if not self.config.router.enabled:
            return self._fallback("routing is off (router.enabled = false)", 0.0, 0.0)
        key = clean.lower()
        with self._lock:
            cached = self._cache.get(key)
            if cached is not None:
                self._cache.move_to_end(key)
                return cached
        decision = self._route_text(clean)
        with self._lock:
            self._cache[key] = decision
            while len(self._cache) > max(0, self.config.router.cache_size):
                self._cache.popitem(last=False)
        return decision

    def embed(self, text: str) -> list[float]:
        """The encoder's unit vector for `text`: the semantic cache's embedder (one MiniLM call, ~5-10 ms)."""
        if self.encoder is None:
            raise RuntimeError("the router is off (router.enabled = false): no encoder is loaded")
        return [float(v) for v in self.encoder.encode([normalise(text) or " "])[0]]

    def probabilities(self, texts: list[str]) -> tuple[list[str], np.ndarray]:
        """The embedding stage's label probabilities for each text (for fit and eval).

        With a multilingual encoder, a request in another language (language.py) is scored by the
        multilingual encoder's classifier alone: MiniLM knows only English, and its vote there is
        noise (grouped CV on the non-English training rows: 0.47 with MiniLM, 0.96 with USE). An
        English request: `combine = "switch"` (default) scores it with the first encoder's
        classifier alone; `"average"` with both, averaged (`encoder_weight` for the first), the
        multilingual encode on a worker thread while MiniLM runs here (onnxruntime lets go of
        the GIL), so the wall clock is about the slower of the two, not their sum. Issue 16
        measured "average" better on the development set (0.912 against 0.898) and in grouped
        CV, and worse on the first English held-out set (0.950 against 0.973): it is not the default."""
        if self.classifier is None or self.encoder is None:
            return [NONE], np.ones((len(texts), 1), dtype=np.float32)
        clean = [normalise(t) or " " for t in texts]
        if self.multilingual_classifier is None or self.multilingual is None:
            return self.classifier.labels, self.classifier.probabilities(self._encode(self.encoder, clean), clean)
        english = np.array([is_english(t) for t in clean], dtype=bool)
        both = self.config.router.combine == "average"
        second_rows = np.arange(len(clean)) if both else np.flatnonzero(~english)
        first_rows = np.flatnonzero(english)
        second_part = [clean[i] for i in second_rows]
        pending = None
        if len(second_rows) and len(first_rows):  # both encoders: the second on the worker thread meanwhile
            pending = self._pool().submit(self._encode, self.multilingual, second_part)
        first = np.zeros((len(clean), len(self.classifier.labels)), dtype=np.float32)
        if len(first_rows):
            part = [clean[i] for i in first_rows]
            first[first_rows] = self.classifier.probabilities(self._encode(self.encoder, part), part)
        second = np.zeros_like(first)
        if len(second_rows):
            # Alone (a request not in English under "switch"), the second encoder runs right here: the
            # hand-off to the worker thread doubled its wait (7.8 ms against 3.7 ms encoding, p50).
            vectors = pending.result() if pending is not None else self._encode(self.multilingual, second_part)
            second[second_rows] = self.multilingual_classifier.probabilities(vectors, second_part)  # same labels
        return self.classifier.labels, self.combine(first, second, english)

    def combine(self, first: np.ndarray, second: np.ndarray, english: np.ndarray) -> np.ndarray:
        """Both classifiers' probabilities merged as configured (see `probabilities`): the
        multilingual one's for requests not in English; for English ones the average, or the first's."""
        weight = self.config.router.encoder_weight if self.config.router.combine == "average" else 1.0
        merged = weight * first + (1 - weight) * second
        return np.asarray(np.where(english[:, None], merged, second), dtype=np.float32)

    @staticmethod
    def _encode(encoder: Encoder, texts: list[str]) -> np.ndarray:
        return cached_encode(encoder, texts) if len(texts) > 20 else encoder.encode(texts)

    def _pool(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="router-encode")
            return self._executor

    # -- stages --------------------------------------------------------------------------

    def _route_text(self, text: str) -> Decision:
        key = text.lower()
        if key in self.examples:  # one of the routes' own examples: a user's correction lands here
            route = self.examples[key]
            where = f"the {route} route's" if route else "the out-of-scope"
            return self._decision(route, 1.0, 1.0, "rule", f"the request is one of {where} examples")
        rule = self.rules.keyword(text)
        if rule is not None and rule.route is not None:
            return self._decision(rule.route, 1.0, 1.0, "rule", rule.reason)
        if self.classifier is None:
            return self._fallback("no routes are configured", 0.0, 0.0)
        labels, probs = self.probabilities([text])
        order = np.argsort(-probs[0])
        best, second = labels[order[0]], labels[order[1]] if len(order) > 1 else NONE
        score = float(probs[0, order[0]])
        margin = score - (float(probs[0, order[1]]) if len(order) > 1 else 0.0)
        if best == NONE:
            runner = f"; closest route {second} at {probs[0, order[1]]:.2f}" if second != NONE else ""
            return self._decision(
                None, score, margin, "embedding", f"reads as general chat, not a code task ({score:.2f}){runner}"
            )
        spec = self.specs[best]
        if score >= spec.threshold:
            return self._decision(
                best, score, margin, "embedding",
                f"closest to the {best} examples ({score:.2f}, threshold {spec.threshold:.2f}; next: {second})",
            )  # fmt: skip
        unsure = f"{best} was the closest route but under its threshold ({score:.2f} < {spec.threshold:.2f})"
        return self._fallback(unsure, score, margin)

    def _fallback(self, why: str, score: float, margin: float) -> Decision:
        role = self.config.router.fallback_role
        return self._decision(None, score, margin, "fallback", f"{why}: sent to the {role} role")

    def _decision(self, route: str | None, score: float, margin: float, stage: Stage, reason: str) -> Decision:
        if route is None:
            role = self.config.router.fallback_role
            tier = self.config.roles.get(role).tier
        else:
            spec = self.specs[route]
            role, tier = spec.role, spec.tier
        return Decision(
            route=route, role=role, tier=tier, score=round(score, 4), margin=round(margin, 4),
            stage=stage, reason=reason,
        )  # fmt: skip

    def with_thresholds(self, thresholds: dict[str, float]) -> Router:
        """A copy that uses other thresholds (for fit); shares the encoder and classifier."""
        clone = object.__new__(Router)
        clone.__dict__.update(self.__dict__)
        clone.specs = {
            n: attrs.evolve(s, threshold=thresholds.get(n, s.threshold)) for n, s in self.specs.items()
        }  # fmt: skip
        clone._cache = OrderedDict()
        clone._lock = threading.Lock()
        clone._executor = None
        return clone


def load_router(config: Config) -> Router:
    """Load the encoder once and build the router from the config's routes."""
    settings = config.router
    if not settings.enabled:  # every request takes the fallback: no encoder, no ONNX export
        return Router(config, None)
    encoder = load_encoder(settings.encoder, settings.backend, settings.threads)
    multilingual = None
    if settings.multilingual_encoder:
        multilingual = load_encoder(settings.multilingual_encoder, settings.backend, settings.threads)
    return Router(config, encoder, multilingual=multilingual)
