"""`tinyarms ask`: one request through the one request path (requests/), streamed to the
terminal; `answer` is also what `tinyarms demo` runs."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

from tinyarms.cli.common import WORKSPACE, Subparsers, arg, command, flag, load_or_exit, prepare_router

if TYPE_CHECKING:
    from tinyarms.config import Config
    from tinyarms.requests.answer import Answered, Request


def register(sub: Subparsers) -> None:
    command(
        sub, "ask", "route a question, run the role's tier chain, stream the answer", cmd_ask,
        arg("text"),
        arg("--role", help="skip routing: chat, edit or agent"),
        arg("--tier", help="start on this tier (the role's escalate_to chain follows)"),
        flag("--json", "print the answer and the decision trace record as JSON"),
        WORKSPACE,
    )  # fmt: skip


def answer(
    config: Config,
    request: Request,
    *,
    on_delta: Callable[[str], None] | None = None,
    on_restart: Callable[[str], None] | None = None,
) -> Answered:
    """Run the request path in a fresh event loop. Raises RequestError, tiers.AllTiersFailed."""
    from tinyarms import tiers
    from tinyarms.requests.answer import ask
    from tinyarms.requests.routing import Routing

    async def run() -> Answered:
        try:
            return await ask(config, request, Routing(), on_delta=on_delta, on_restart=on_restart)
        finally:
            await tiers.aclose()

    return asyncio.run(run())


def _delta(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


def _restart(reason: str) -> None:
    # A terminal cannot unprint: mark the break so two answers never run together.
    sys.stdout.write(f"\n--- tinyarms: answer restarted ({reason}) ---\n")
    sys.stdout.flush()


def cmd_ask(args: argparse.Namespace) -> int:
    from tinyarms.requests.answer import Request
    from tinyarms.requests.decide import RequestError
    from tinyarms.tiers import AllTiersFailed

    config = load_or_exit(args).config
    if args.role is None:
        prepare_router(config, args)
    streaming = not args.json
    try:
        answered = answer(
            config,
            Request(text=args.text, role=args.role, tier=args.tier),
            on_delta=_delta if streaming else None,
            on_restart=_restart if streaming else None,
        )
    except RequestError as exc:
        print(f"tinyarms: {exc}", file=sys.stderr)
        return 2
    except AllTiersFailed as exc:
        print(str(exc), file=sys.stderr)
        if args.json:
            print(json.dumps({"error": str(exc), "trace": exc.trace}, indent=2))
        return 1
    decision, result = answered.decision, answered.answer
    if args.json:
        usage = {"prompt_tokens": result.usage.prompt_tokens, "completion_tokens": result.usage.completion_tokens}
        shown = {"text": result.text, "tier": result.tier, "model": result.model, "usage": usage}
        print(json.dumps({**shown, "cost_usd": result.cost_usd, "decision": decision.to_dict(), "trace": result.trace},
                         indent=2))  # fmt: skip
    else:
        sys.stdout.write("\n")
        print(
            f"[{decision.role} on {result.tier} ({result.model}), {result.trace['latency_ms']:.0f} ms, "
            f"${result.cost_usd:.6f}, cache {result.trace['cache']}]",
            file=sys.stderr,
        )
    return 0
