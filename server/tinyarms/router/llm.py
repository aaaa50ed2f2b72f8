"""The optional LLM stage: a small local model picks a route for what the embeddings were unsure of.

The model runs in a model child process (local_model/), never in the server: llama.cpp
is native code, and a crash in it must not take the language server down. The model sees
a short prompt listing the routes and we read the log-probability of each label's first
token after "Category:": one forward pass per request, no sampling, no free text to parse.
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import weakref
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from tinyarms.config import Config

log = logging.getLogger(__name__)

NONE_DESCRIPTION = "not a programming request"  # the `none` label; routes describe themselves in TOML


class LlmClassifier(Protocol):
    def classify(self, text: str, labels: list[str]) -> tuple[str, float]:
        """The most likely label and its probability among `labels`."""
        ...


class ChildClassifier:
    """The LLM stage on a crash-isolated model child (local_model/), like every llama.cpp
    model: a segfault or a hang there costs this stage one request, never the server.

    The router is synchronous (it runs in a worker thread), the model client is asyncio:
    the client lives on an event loop of its own, in a daemon thread.
    """

    def __init__(self, spec: str, descriptions: dict[str, str], n_threads: int = 2, timeout_s: float = 30.0) -> None:
        from tinyarms.local_model.client import LocalModel

        self.descriptions = {"none": NONE_DESCRIPTION, **descriptions}
        self.timeout_s = timeout_s
        self._loop = asyncio.new_event_loop()
        threading.Thread(target=self._loop.run_forever, name="router-llm", daemon=True).start()
        self.model = LocalModel(spec, purpose="router", n_ctx=512, n_threads=n_threads)
        weakref.finalize(self, _close, self.model, self._loop)
        self._run(self.model.start(), timeout=600)  # a first load may assemble the model file

    def _run(self, coro: Any, timeout: float) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def prompt(self, text: str, labels: list[str]) -> str:
        lines = "\n".join(f"- {label}: {self.descriptions.get(label) or label}" for label in labels)
        return (
            f"Classify the developer's request into one category.\n{lines}\n\n"
            f"Request: {text[:400]}\nCategory:"
        )

    def classify(self, text: str, labels: list[str]) -> tuple[str, float]:
        candidates = [f" {label}" for label in labels]
        logits = self._run(self.model.score(self.prompt(text, labels), candidates), self.timeout_s)
        chosen = dict(zip(labels, logits, strict=True))
        peak = max(chosen.values())
        total = sum(math.exp(v - peak) for v in chosen.values())
        best = max(chosen, key=lambda label: chosen[label])
        return best, 1.0 / total


def _close(model: Any, loop: asyncio.AbstractEventLoop) -> None:
    model.kill_now()
    loop.call_soon_threadsafe(loop.stop)


def load_llm(config: Config) -> LlmClassifier:
    from tinyarms.backends.registry import provider

    tier = config.tiers.get(config.router.llm_tier)
    if tier is None or not provider(tier.provider).runs_gguf:
        raise ValueError(f"router.llm_tier '{config.router.llm_tier}' must name a llama-cpp tier")
    descriptions = {name: route.description for name, route in config.routes.items() if route.description}
    return ChildClassifier(tier.model, descriptions, tier.n_threads or 2)
