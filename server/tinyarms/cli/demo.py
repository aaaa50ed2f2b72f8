"""`tinyarms demo`: what tinyarms does on this machine with no key and no download: the
roles and tiers in effect, a real completion from the local model with its latency, and
one routed question answered on the local tier."""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import TYPE_CHECKING

import attrs

from tinyarms import __version__
from tinyarms.cli.common import WORKSPACE, Subparsers, command, load_or_exit, prepare_router

if TYPE_CHECKING:
    from tinyarms.config import Config

DEMO_PREFIX = "import os\n\n\ndef read_lines(path):\n    with open(path) as f:\n        return f."
DEMO_QUESTION = "explain what a list comprehension is in Python"


def register(sub: Subparsers) -> None:
    command(sub, "demo", "show what tinyarms does on this machine, no key needed", cmd_demo, WORKSPACE)


def cmd_demo(args: argparse.Namespace) -> int:
    from tinyarms.config.explain import roles_summary

    loaded = load_or_exit(args)
    print(f"tinyarms {__version__}: roles -> tiers (preset '{loaded.config.extends}')")
    for line in roles_summary(loaded.result):
        print(f"  {line}")
    prepare_router(loaded.config, args)
    return asyncio.run(_completion(args)) or _answer(loaded.config)


async def _completion(args: argparse.Namespace) -> int:
    """A real completion from the autocomplete tier's local model, with its latency."""
    from tinyarms.autocomplete.engine import CompletionRequest
    from tinyarms.cli.complete import engine_for
    from tinyarms.local_model import LocalModelError

    started = time.perf_counter()
    try:
        engine = await engine_for(args, max_latency_ms=None)
    except (LocalModelError, SystemExit) as exc:
        print(f"autocomplete: no local model ({exc})")
        return 0
    loaded = time.perf_counter() - started
    try:
        lines = DEMO_PREFIX.split("\n")
        first = await engine.complete(CompletionRequest(lines, len(lines) - 1, len(lines[-1]), doc="demo"))
        lines[-1] += first.text[:1]  # the user types the first suggested character
        again = await engine.complete(CompletionRequest(lines, len(lines) - 1, len(lines[-1]), doc="demo"))
    finally:
        await engine.model.shutdown()
    print(f"\nautocomplete with {first.model} (template {first.template}, loaded in {loaded:.1f}s):")
    print("  " + DEMO_PREFIX.replace("\n", "\n  ") + f"\u2038{first.text}")
    print(f"  cold prompt: {first.elapsed_ms:.0f} ms; next keystroke ({again.source}): {again.elapsed_ms:.1f} ms")
    return 0


def _answer(config: Config) -> int:
    """One routed question answered on the local tier: no key, no download."""
    from tinyarms.cli.ask import answer
    from tinyarms.requests.answer import Request
    from tinyarms.tiers import AllTiersFailed

    # A short answer keeps the demo quick on a laptop CPU.
    config = attrs.evolve(config, roles=attrs.evolve(config.roles, chat=attrs.evolve(config.roles.chat, max_tokens=80)))
    print(f"\nask: {DEMO_QUESTION!r}")
    try:
        answered = answer(
            config, Request(text=DEMO_QUESTION, tier="local"), on_delta=lambda d: print(d, end="", flush=True)
        )
    except AllTiersFailed as exc:
        print(f"\n{exc}")
        return 1
    decision, result = answered.decision, answered.answer
    where = f"route {decision.route} ({decision.stage}, score {decision.score:.2f}) -> role {decision.role}"
    ran = f"tier {result.tier} ({result.model}), {result.trace.get('latency_ms')} ms, ${result.cost_usd:.4f}"
    print(f"\n  {where}, {ran}")
    return 0
