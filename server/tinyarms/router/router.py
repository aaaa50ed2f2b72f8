"""The router: a request's text to a `Decision`, cheapest stage first.

1. explicit: a slash command (`/explain ...`) names the route.
2. rule: one route's high-precision keywords match, and no other route's do.
3. embedding: MiniLM vector + n-gram TF-IDF -> softmax regression over the routes and `none`; a route is
   taken when its probability reaches the route's (fitted) threshold.
4. llm (optional, `router.low_confidence = "llm"`): a small local model picks among the
   routes for what the embeddings were unsure of.
5. fallback: nothing confident: the configured fallback role (`chat`), route None.

Recent decisions are kept in an LRU keyed by the normalised text.
"""

from __future__ import annotations

import logging
import re
import threading
from collections import OrderedDict
from typing import TYPE_CHECKING

import attrs
import numpy as np
from attrs import define

from tinyarms.router.classifier import NONE, Classifier, train
from tinyarms.router.decision import Decision, Stage
from tinyarms.router.encoder import Encoder, cached_encode, load_encoder
from tinyarms.router.rules import Rules

if TYPE_CHECKING:
    from tinyarms.config import Config
    from tinyarms.router.llm import LlmClassifier

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


def normalise(text: str) -> str:
    """Control characters and runs of whitespace out; long requests cut to MAX_CHARS."""
    text = _CONTROL.sub(" ", text[: MAX_CHARS * 2])
    return " ".join(text.split())[:MAX_CHARS]


class Router:
    def __init__(self, config: Config, encoder: Encoder | None, llm: LlmClassifier | None = None) -> None:
        self.config = config
        self.encoder = encoder
        self.llm = llm
        self.specs = {spec.name: spec for spec in route_specs(config)}
        self.rules = Rules(list(self.specs))
        texts, labels = training_rows(config)
        self.classifier: Classifier | None = None
        if self.specs and texts and encoder is not None:
            self.classifier = train(cached_encode(encoder, texts), labels, texts)
        self._cache: OrderedDict[str, Decision] = OrderedDict()
        self._lock = threading.Lock()

    # -- public API ----------------------------------------------------------------------

    def route(self, text: str) -> Decision:
        """Never raises on user text: unusable input gets a fallback decision that says why."""
        if not isinstance(text, str):
            raise ValueError(f"route() needs text, got {type(text).__name__}")
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
        """The embedding stage's label probabilities for each text (for fit and eval)."""
        if self.classifier is None or self.encoder is None:
            return [NONE], np.ones((len(texts), 1), dtype=np.float32)
        clean = [normalise(t) or " " for t in texts]
        vectors = cached_encode(self.encoder, clean) if len(clean) > 20 else self.encoder.encode(clean)
        return self.classifier.labels, self.classifier.probabilities(vectors, clean)

    # -- stages --------------------------------------------------------------------------

    def _route_text(self, text: str) -> Decision:
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
        if self.config.router.low_confidence == "llm" and self.llm is not None:
            try:
                choice, llm_score = self.llm.classify(text, [*self.specs, NONE])
            except Exception as exc:  # a failing model never blocks a request
                log.warning("router LLM stage failed: %s", exc)
                return self._fallback(f"{unsure}; the LLM stage failed", score, margin)
            if choice == NONE:
                return self._decision(None, llm_score, margin, "llm", f"{unsure}; the local model says: no route")
            return self._decision(choice, llm_score, margin, "llm", f"{unsure}; the local model picked {choice}")
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
        return clone


def load_router(config: Config) -> Router:
    """Load the encoder once and build the router from the config's routes."""
    settings = config.router
    if not settings.enabled:  # every request takes the fallback: no encoder, no ONNX export
        return Router(config, None)
    encoder = load_encoder(settings.encoder, settings.backend, settings.threads)
    llm = None
    if settings.low_confidence == "llm":
        from tinyarms.router.llm import load_llm

        llm = load_llm(config)
    return Router(config, encoder, llm)
