"""The optional LLM stage: a small local model picks a route for what the embeddings were unsure of.

All use of llama_cpp for routing is here, behind `LlmClassifier`, so it can move onto the
shared local-model process later. The model sees a short prompt listing the routes and
we read the log-probability of each label's first token after "Category:": one forward
pass per request, no sampling, no free text to parse.
"""

from __future__ import annotations

import logging
import math
import threading
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from tinyarms.config import Config

log = logging.getLogger(__name__)

DESCRIPTIONS = {
    "explain": "explain what code does or how something works",
    "generate": "write new code",
    "refactor": "restructure existing code without changing behaviour",
    "fix": "fix a bug or an error",
    "test": "write tests",
    "document": "write docs or comments",
    "review": "review code and give feedback",
    "plan": "a large change across many files",
    "none": "not a programming request",
}


class LlmClassifier(Protocol):
    def classify(self, text: str, labels: list[str]) -> tuple[str, float]:
        """The most likely label and its probability among `labels`."""
        ...


class LlamaCppClassifier:
    def __init__(self, model_path: str, n_threads: int = 2) -> None:
        from llama_cpp import Llama

        self.llm: Any = Llama(model_path=model_path, n_ctx=512, n_threads=min(n_threads, 2), verbose=False)
        self._lock = threading.Lock()  # one llama context: one request at a time

    def prompt(self, text: str, labels: list[str]) -> str:
        lines = "\n".join(f"- {label}: {DESCRIPTIONS.get(label, label)}" for label in labels)
        return (
            f"Classify the developer's request into one category.\n{lines}\n\n"
            f"Request: {text[:400]}\nCategory:"
        )

    def classify(self, text: str, labels: list[str]) -> tuple[str, float]:
        first = {label: self.llm.tokenize(f" {label}".encode(), add_bos=False, special=False)[0] for label in labels}
        tokens = self.llm.tokenize(self.prompt(text, labels).encode(), add_bos=True, special=False)
        with self._lock:
            self.llm.reset()
            self.llm.eval(tokens)
            logits = self.llm.scores[self.llm.n_tokens - 1]
        chosen = {label: float(logits[token]) for label, token in first.items()}
        peak = max(chosen.values())
        total = sum(math.exp(v - peak) for v in chosen.values())
        best = max(chosen, key=lambda label: chosen[label])
        return best, 1.0 / total


def load_llm(config: Config) -> LlmClassifier:
    from tinyarms.models.sources import resolve

    tier = config.tiers.get(config.router.llm_tier)
    if tier is None or tier.provider != "llama-cpp":
        raise ValueError(f"router.llm_tier '{config.router.llm_tier}' must name a llama-cpp tier")
    return LlamaCppClassifier(str(resolve(tier.model)), tier.n_threads or 2)
