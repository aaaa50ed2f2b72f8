"""The `tinyarms` command: serve, config, demo (other subcommands add themselves here).

Each subcommand is one function `cmd_<name>(args) -> exit code`; `build_parser`
lists them all. Heavy imports (models, torch) happen inside the functions that
need them, so `tinyarms config ...` stays instant.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tinyarms import __version__, logs

if TYPE_CHECKING:
    from tinyarms.config import Config, ConfigInputs
    from tinyarms.router import Router


def _inputs(args: argparse.Namespace) -> ConfigInputs:
    from tinyarms.config import ConfigInputs

    workspace = Path(args.workspace).resolve() if getattr(args, "workspace", None) else Path.cwd()
    return ConfigInputs(workspace=workspace)


# -- serve ---------------------------------------------------------------------------------


def cmd_serve(args: argparse.Namespace) -> int:
    from tinyarms.server import create_server

    server = create_server()
    if args.tcp:
        host, _, port = args.tcp.rpartition(":")
        server.start_tcp(host or "127.0.0.1", int(port))
    else:
        server.start_io()
    return 0


def cmd_acp(args: argparse.Namespace) -> int:
    from tinyarms.acp import main as acp_main

    return acp_main()


# -- config --------------------------------------------------------------------------------


def cmd_config_show(args: argparse.Namespace) -> int:
    from tinyarms.config import load_config
    from tinyarms.config.explain import effective, explained, to_toml

    result = load_config(_inputs(args))
    for problem in result.problems:
        print(f"{problem.severity}: {problem}", file=sys.stderr)
    if result.config is None:
        print("tinyarms: the config has errors (above); nothing to show", file=sys.stderr)
        return 1
    if args.json:
        tree = explained(result) if args.explain else effective(result)
        print(json.dumps(tree, indent=2))
    else:
        print(to_toml(result, explain=args.explain), end="")
    return 0


def cmd_config_check(args: argparse.Namespace) -> int:
    from tinyarms.config import ConfigInputs, load_config

    path = Path(args.file).resolve()
    if not path.is_file():
        print(f"{path}: no such file", file=sys.stderr)
        return 2
    # Check the file as a user file: layered on its preset, without the real user file,
    # editor or environment, so only this file's problems are reported.
    result = load_config(ConfigInputs(user_file=path, env={}))
    problems = [p for p in result.problems if p.file in (path, None) or p.severity == "error"]
    for problem in problems:
        print(f"{problem}" if problem.file else f"{path}:1: {problem.message}")
    if result.config is None:
        return 1
    print(f"{path}: ok", file=sys.stderr)
    return 0


def cmd_config_path(args: argparse.Namespace) -> int:
    from tinyarms.config import user_config_file
    from tinyarms.config.layers import presets_dir, workspace_config_file

    workspace = _inputs(args).workspace
    print(f"user file:      {user_config_file()}")
    print(f"workspace file: {workspace_config_file(workspace) if workspace else None}")
    print(f"presets:        {presets_dir()}")
    return 0


# -- demo ----------------------------------------------------------------------------------


def cmd_demo(args: argparse.Namespace) -> int:
    from tinyarms.config import load_config
    from tinyarms.config.explain import roles_summary

    result = load_config(_inputs(args))
    if result.config is None:
        for problem in result.problems:
            print(problem, file=sys.stderr)
        return 1
    print(f"tinyarms {__version__}: roles -> tiers (preset '{result.config.extends}')")
    for line in roles_summary(result):
        print(f"  {line}")
    return _demo_completion(args)


DEMO_PREFIX = "import os\n\n\ndef read_lines(path):\n    with open(path) as f:\n        return f."


def _demo_completion(args: argparse.Namespace) -> int:
    """A real completion from the autocomplete tier's local model, with its latency."""
    import asyncio
    import time

    from tinyarms.autocomplete.engine import CompletionRequest
    from tinyarms.local_model import LocalModelError

    async def run() -> int:
        args.max_latency_ms = 0
        started = time.perf_counter()
        try:
            engine = await _completion_engine(args)
        except (LocalModelError, SystemExit) as exc:
            print(f"autocomplete: no local model ({exc})")
            return 0
        loaded = time.perf_counter() - started
        try:
            lines = DEMO_PREFIX.split("\n")
            request = CompletionRequest(lines, len(lines) - 1, len(lines[-1]), doc="demo")
            first = await engine.complete(request)
            lines[-1] += first.text[:1]  # the user types the first suggested character
            again = await engine.complete(CompletionRequest(lines, len(lines) - 1, len(lines[-1]), doc="demo"))
        finally:
            await engine.model.shutdown()
        print(f"\nautocomplete with {first.model} (template {first.template}, loaded in {loaded:.1f}s):")
        print("  " + DEMO_PREFIX.replace("\n", "\n  ") + f"\u2038{first.text}")
        print(f"  cold prompt: {first.elapsed_ms:.0f} ms; next keystroke ({again.source}): {again.elapsed_ms:.1f} ms")
        return 0

    code = asyncio.run(run())
    return code or _demo_answer(args)


DEMO_QUESTION = "explain what a list comprehension is in Python"


def _demo_answer(args: argparse.Namespace) -> int:
    """One routed question answered on the local tier: no key, no download."""
    import asyncio

    import attrs

    from tinyarms import ask, tiers
    from tinyarms.config import load_config

    config = load_config(_inputs(args)).config
    assert config is not None  # cmd_demo checked it
    # A short answer keeps the demo quick on a laptop CPU.
    config = attrs.evolve(config, roles=attrs.evolve(config.roles, chat=attrs.evolve(config.roles.chat, max_tokens=80)))
    print(f"\nask: {DEMO_QUESTION!r}")
    try:
        decision, answer = asyncio.run(
            ask.ask_once(config, DEMO_QUESTION, tier="local", on_delta=lambda d: print(d, end="", flush=True))
        )
    except tiers.AllTiersFailed as exc:
        print(f"\n{exc}")
        return 1
    where = f"route {decision.route} ({decision.stage}, score {decision.score:.2f}) -> role {decision.role}"
    ran = f"tier {answer.tier} ({answer.model}), {answer.trace.get('latency_ms')} ms, ${answer.cost_usd:.4f}"
    print(f"\n  {where}, {ran}")
    return 0


# -- complete (autocomplete engine, issue 3) ---------------------------------------------


async def _completion_engine(args: argparse.Namespace) -> Any:
    from tinyarms.autocomplete.engine import CompletionEngine, detect_template
    from tinyarms.config import load_config
    from tinyarms.local_model import get_model

    result = load_config(_inputs(args))
    if result.config is None:
        raise SystemExit("tinyarms: the config has errors: " + "; ".join(map(str, result.errors)))
    role = result.config.roles.autocomplete
    tier = result.config.tier_for("autocomplete")
    if tier.provider != "llama-cpp":
        raise SystemExit(f"tinyarms: the autocomplete tier '{role.tier}' is not a llama-cpp tier")
    model = get_model(tier.model, purpose="autocomplete", n_ctx=tier.n_ctx, n_threads=tier.n_threads)
    await model.start()
    template = await detect_template(model, tier.template)
    budget = args.max_latency_ms if args.max_latency_ms and args.max_latency_ms > 0 else None
    return CompletionEngine(model, template, model_name=tier.model, max_latency_ms=budget, multiline=role.multiline)


async def _complete(args: argparse.Namespace) -> int:
    from tinyarms.autocomplete.engine import CompletionRequest
    from tinyarms.local_model import LocalModelError

    try:
        engine = await _completion_engine(args)
    except LocalModelError as exc:
        print(f"tinyarms: {exc}", file=sys.stderr)
        return 1
    try:
        if args.jsonl:
            for number, raw in enumerate(sys.stdin, 1):
                if not raw.strip():
                    continue
                try:
                    item = json.loads(raw)
                    prefix, suffix = str(item.get("prefix", "")), str(item.get("suffix", ""))
                except (ValueError, AttributeError) as exc:
                    print(f"stdin:{number}: not a JSON object with prefix/suffix: {exc}", file=sys.stderr)
                    print(json.dumps({"text": "", "elapsed_ms": 0.0, "error": str(exc)}), flush=True)
                    continue
                head, tail = prefix.split("\n"), suffix.split("\n")
                lines = head[:-1] + [head[-1] + tail[0]] + tail[1:]
                request = CompletionRequest(
                    lines, len(head) - 1, len(head[-1]), doc=f"stdin:{number}", path=item.get("path")
                )
                completion = await engine.complete(request)
                print(json.dumps({"text": completion.text, "elapsed_ms": completion.elapsed_ms}), flush=True)
            return 0
        if not args.file:
            print("tinyarms complete: give FILE --line L --col C, or --jsonl", file=sys.stderr)
            return 2
        path = Path(args.file)
        try:
            source = path.read_bytes().decode("utf-8", errors="replace").replace("\r\n", "\n")
        except OSError as exc:
            print(f"tinyarms complete: {exc}", file=sys.stderr)
            return 2
        lines = source.split("\n")
        line = min(max(args.line, 0), len(lines) - 1)
        column = min(max(args.col, 0), len(lines[line]))
        completion = await engine.complete(CompletionRequest(lines, line, column, doc=str(path), path=str(path)))
        if args.json:
            keys = ("text", "elapsed_ms", "model", "template")
            print(json.dumps({key: getattr(completion, key) for key in keys}))
        else:
            print(completion.text)
        return 0
    finally:
        await engine.model.shutdown()


def cmd_complete(args: argparse.Namespace) -> int:
    import asyncio

    return asyncio.run(_complete(args))


def add_complete_parser(sub: Any) -> None:
    complete = sub.add_parser("complete", help="complete code at a position with the autocomplete model")
    complete.add_argument("file", nargs="?", help="the source file")
    complete.add_argument("--line", type=int, default=0, help="0-based line")
    complete.add_argument("--col", type=int, default=0, help="0-based column (code points)")
    complete.add_argument("--json", action="store_true", help='print {"text", "elapsed_ms", "model", "template"}')
    complete.add_argument("--jsonl", action="store_true", help='read {"prefix", "suffix", "path"} lines on stdin')
    complete.add_argument(
        "--max-latency-ms", type=int, default=0, help="answer with what is generated by then (default: the whole line)"
    )
    complete.add_argument("--workspace", metavar="DIR")
    complete.set_defaults(func=cmd_complete)


# -- models (pull, list) -------------------------------------------------------------------


def cmd_models_pull(args: argparse.Namespace) -> int:
    from tinyarms import model_cache
    from tinyarms.models import ModelNotAvailable

    code = 0
    for spec in args.specs:
        if not spec.startswith("hf:"):
            print(f"tinyarms: {spec}: only hf:owner/repo/file.gguf models are pulled", file=sys.stderr)
            code = 2
            continue
        try:
            pulled = model_cache.pull(spec, revision=args.revision, force=args.force)
        except (model_cache.PullError, ModelNotAvailable) as exc:
            print(f"tinyarms: {exc}", file=sys.stderr)
            code = 1
            continue
        how = "already cached" if not pulled.downloaded else "downloaded"
        if pulled.resumed_from:
            how += f", resumed at {model_cache.human_size(pulled.resumed_from)}"
        print(f"{spec}: {how}, {model_cache.human_size(pulled.size)}, {pulled.checksum} ok")
        print(f"  {pulled.path}")
    return code


def cmd_models_list(args: argparse.Namespace) -> int:
    from tinyarms import model_cache
    from tinyarms.config import load_config

    result = load_config(_inputs(args))
    for problem in result.errors:
        print(f"error: {problem}", file=sys.stderr)
    entries = model_cache.list_models(result.config)
    if args.json:
        print(json.dumps([entry.to_dict() for entry in entries], indent=2))
        return 0
    rows = [("model", "size", "state", "used by (tier: roles)")]
    for entry in entries:
        used = f"{', '.join(entry.tiers)}: {', '.join(entry.roles) or '-'}" if entry.tiers else "-"
        rows.append((entry.spec, model_cache.human_size(entry.size), entry.state, used))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for row in rows:
        print("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:3])) + "  " + row[3])
    for entry in entries:
        if entry.note and entry.state != "cached":
            print(f"  {entry.spec}: {entry.note}", file=sys.stderr)
    from tinyarms.models import cache_dir

    print(f"cache: {cache_dir()}")
    return 0


# -- setup nvim ------------------------------------------------------------------------------


def _confirm(question: str) -> bool:
    try:
        return input(f"{question} [y/N] ").strip().lower() in ("y", "yes")
    except EOFError:  # no terminal: the answer is no
        print(file=sys.stderr)
        return False


def cmd_setup_nvim(args: argparse.Namespace) -> int:
    from tinyarms import setup_nvim

    if args.lazy:
        text = setup_nvim.lazy_spec(args.python)
        path = setup_nvim.config_dir() / "lua" / "plugins" / "tinyarms.lua"
    else:
        text = setup_nvim.snippet(args.python)
        path = setup_nvim.init_file()
    if not args.write:
        print(text, end="")
        where = f"save it as {path}" if args.lazy else f"add these lines to {path}"
        print(f"-- {where}, or run `tinyarms setup nvim{' --lazy' if args.lazy else ''} --write`", file=sys.stderr)
        return 0
    current = path.read_text(encoding="utf-8") if path.is_file() else ""
    if args.lazy:
        if current and not current.startswith(text.splitlines()[0]):
            print(f"tinyarms: {path} exists and was not written by tinyarms; nothing written", file=sys.stderr)
            return 1
        new = text
    else:
        new = setup_nvim.updated_text(current, setup_nvim.block_for(path, text))
    if new == current:
        print(f"{path}: tinyarms is already set up")
        return 0
    print(text, end="")
    verb = "Update the tinyarms lines in" if setup_nvim.BEGIN in current else "Add this to"
    if not args.yes and not _confirm(f"{verb} {path}?"):
        print("nothing written", file=sys.stderr)
        return 1
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".tinyarms-tmp")
    partial.write_text(new, encoding="utf-8")
    partial.replace(path)
    print(f"{path}: written; open a project file in Neovim and run :TinyarmsStatus")
    return 0


# -- ask, stats, cache (issue 5: cloud tiers) ---------------------------------------------------


def _load_or_report(args: argparse.Namespace) -> Config | None:
    from tinyarms.config import load_config

    result = load_config(_inputs(args))
    for problem in result.problems:
        print(f"{problem.severity}: {problem}", file=sys.stderr)
    if result.config is None:
        print("tinyarms: the config has errors (above)", file=sys.stderr)
    return result.config


def cmd_ask(args: argparse.Namespace) -> int:
    import asyncio

    from tinyarms.ask import ask_once
    from tinyarms.config import ROLE_NAMES
    from tinyarms.tiers import AllTiersFailed

    config = _load_or_report(args)
    if config is None:
        return 1
    if args.role is not None and (args.role not in ROLE_NAMES or args.role == "autocomplete"):
        print(f"tinyarms: unknown role '{args.role}' (chat, edit or agent)", file=sys.stderr)
        return 2
    if args.tier is not None and args.tier not in config.tiers:
        print(f"tinyarms: unknown tier '{args.tier}' (defined: {', '.join(sorted(config.tiers))})", file=sys.stderr)
        return 2

    def delta(text: str) -> None:
        sys.stdout.write(text)
        sys.stdout.flush()

    def restart(reason: str) -> None:
        # A terminal cannot unprint: mark the break so two answers never run together.
        sys.stdout.write(f"\n--- tinyarms: answer restarted ({reason}) ---\n")
        sys.stdout.flush()

    streaming = not args.json
    try:
        decision, answer = asyncio.run(
            ask_once(
                config,
                args.text,
                role=args.role,
                tier=args.tier,
                on_delta=delta if streaming else None,
                on_restart=restart if streaming else None,
            )
        )
    except AllTiersFailed as exc:
        print(str(exc), file=sys.stderr)
        if args.json:
            print(json.dumps({"error": str(exc), "trace": exc.trace}, indent=2))
        return 1
    if args.json:
        usage = {"prompt_tokens": answer.usage.prompt_tokens, "completion_tokens": answer.usage.completion_tokens}
        print(
            json.dumps(
                {
                    "text": answer.text,
                    "tier": answer.tier,
                    "model": answer.model,
                    "usage": usage,
                    "cost_usd": answer.cost_usd,
                    "decision": decision.to_dict(),
                    "trace": answer.trace,
                },
                indent=2,
            )
        )
    else:
        sys.stdout.write("\n")
        print(
            f"[{decision.role} on {answer.tier} ({answer.model}), {answer.trace['latency_ms']:.0f} ms, "
            f"${answer.cost_usd:.6f}, cache {answer.trace['cache']}]",
            file=sys.stderr,
        )
    return 0


def cmd_stats(args: argparse.Namespace) -> int:
    from tinyarms import trace

    try:
        since = trace.parse_duration(args.since) if args.since else None
    except ValueError as exc:
        print(f"tinyarms: {exc}", file=sys.stderr)
        return 2
    summary = trace.stats(list(trace.read(since_s=since)))
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        sys.stdout.write(trace.format_stats(summary))
    return 0


def cmd_cache_clear(args: argparse.Namespace) -> int:
    from tinyarms.cache import ResponseCache

    store = ResponseCache()
    removed = store.clear()
    print(f"removed {removed} cached answer{'s' if removed != 1 else ''} from {store.path}")
    return 0


def add_cloud_commands(sub: Any) -> None:
    ask = sub.add_parser("ask", help="route a question, run the role's tier chain, stream the answer")
    ask.add_argument("text")
    ask.add_argument("--role", help="skip routing: chat, edit or agent")
    ask.add_argument("--tier", help="start on this tier (the role's escalate_to chain follows)")
    ask.add_argument("--json", action="store_true", help="print the answer and the decision trace record as JSON")
    ask.add_argument("--workspace", metavar="DIR")
    ask.set_defaults(func=cmd_ask)

    stats = sub.add_parser("stats", help="calls, latency, tokens, cost and errors per role and tier")
    stats.add_argument("--since", metavar="DURATION", help="only the last DURATION, e.g. 7d, 12h, 30m")
    stats.add_argument("--json", action="store_true")
    stats.set_defaults(func=cmd_stats)

    cache = sub.add_parser("cache", help="the response cache")
    cache_sub = cache.add_subparsers(dest="cache_command", required=True)
    clear = cache_sub.add_parser("clear", help="remove every cached answer")
    clear.set_defaults(func=cmd_cache_clear)
# -- route / router (the semantic command router) ------------------------------------------


def _load_router(args: argparse.Namespace) -> Router | None:
    from tinyarms.config import load_config
    from tinyarms.router import load_router

    result = load_config(_inputs(args))
    if result.config is None:
        for problem in result.problems:
            print(problem, file=sys.stderr)
        return None
    return load_router(result.config)


def cmd_route(args: argparse.Namespace) -> int:
    import time

    router = _load_router(args)
    if router is None:
        return 1

    def show(text: str, as_json: bool) -> None:
        start = time.perf_counter()
        try:
            decision = router.route(text).to_dict()
        except ValueError as exc:
            decision = {"error": str(exc)}
        decision["elapsed_ms"] = round((time.perf_counter() - start) * 1000, 3)
        if as_json:
            print(json.dumps(decision), flush=True)
        else:
            print(f"{decision.get('route') or '(none)'} -> {decision.get('role')} on {decision.get('tier')}"
                  f" [{decision.get('stage')}, score {decision.get('score')}] {decision.get('reason')}")  # fmt: skip

    if args.text:
        show(" ".join(args.text), args.json)
        return 0
    for line in sys.stdin:  # one query per line, one JSON decision per line, in order
        show(line.rstrip("\n"), True)
    return 0


def _labelled_and_router(args: argparse.Namespace) -> tuple[list[tuple[str, str]], Router] | int:
    """The labelled rows of `args.file` and a loaded router, or the exit code that says why not."""
    from tinyarms.router.fit import LabelledFileError, load_labelled

    try:
        rows = load_labelled(Path(args.file))
    except LabelledFileError as exc:
        print(exc, file=sys.stderr)
        return 2
    router = _load_router(args)
    return 1 if router is None else (rows, router)


def cmd_router_fit(args: argparse.Namespace) -> int:
    from tinyarms.router.fit import fit, thresholds_toml

    loaded = _labelled_and_router(args)
    if isinstance(loaded, int):
        return loaded
    rows, router = loaded
    result = fit(router, rows, args.min_oos_recall)
    for name, figures in (("before", result.before), ("after", result.after)):
        print(f"{name}: accuracy {figures['accuracy']}, macro-F1 {figures['macro_f1']}, "
              f"OOS recall {figures['oos_recall']} (n={figures['n']})", file=sys.stderr)  # fmt: skip
    text = thresholds_toml(result, args.file)
    if args.out:
        Path(args.out).write_text(text, encoding="utf-8")
        print(f"thresholds written to {args.out}", file=sys.stderr)
    else:
        print(text, end="")
    return 0


def cmd_router_eval(args: argparse.Namespace) -> int:
    from tinyarms.router.fit import evaluate

    loaded = _labelled_and_router(args)
    if isinstance(loaded, int):
        return loaded
    rows, router = loaded
    report = evaluate(router, rows)
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"n={report['n']}  accuracy {report['accuracy']}  macro-F1 {report['macro_f1']}  "
          f"OOS recall {report['oos_recall']}  latency p50 {report['latency_ms']['p50']} ms "
          f"p95 {report['latency_ms']['p95']} ms  stages {report['stages']}")  # fmt: skip
    names = list(report["confusion"])
    width = max(len(n) for n in names) + 1
    print("confusion (rows: gold, columns: predicted)")
    print(" " * width + " ".join(f"{n[:8]:>8}" for n in names))
    for gold in names:
        print(f"{gold:<{width}}" + " ".join(f"{report['confusion'][gold][p]:>8}" for p in names))
    return 0


def add_router_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    route = sub.add_parser("route", help="route a request: which route, role and tier, and why")
    route.add_argument("text", nargs="*", help="the request; none: one request per line on stdin, JSON out")
    route.add_argument("--json", action="store_true", help="print the decision as JSON")
    route.add_argument("--workspace", metavar="DIR")
    route.set_defaults(func=cmd_route)
    router = sub.add_parser("router", help="fit or evaluate the router on labelled requests")
    router_sub = router.add_subparsers(dest="router_command", required=True)
    fit = router_sub.add_parser("fit", help="fit per-route thresholds on label<TAB>text lines; writes TOML")
    fit.add_argument("file")
    fit.add_argument("--out", metavar="FILE", help="write the thresholds here (default: stdout)")
    fit.add_argument("--min-oos-recall", type=float, default=0.9, metavar="X", help="out-of-scope recall floor")
    fit.add_argument("--workspace", metavar="DIR")
    fit.set_defaults(func=cmd_router_fit)
    evaluate = router_sub.add_parser("eval", help="accuracy, macro-F1, OOS recall, confusion, latency")
    evaluate.add_argument("file")
    evaluate.add_argument("--json", action="store_true")
    evaluate.add_argument("--workspace", metavar="DIR")
    evaluate.set_defaults(func=cmd_router_eval)


# -- parser --------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tinyarms", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"tinyarms {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="-v info, -vv debug (to stderr)")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the language server (stdio by default)")
    serve.add_argument("--tcp", metavar="HOST:PORT", help="listen on TCP instead of stdio")
    serve.add_argument("--stdio", action="store_true", help="use stdio (the default; for clients that pass it)")
    serve.set_defaults(func=cmd_serve)

    acp = sub.add_parser("acp", help="run the agent over the Agent Client Protocol on stdio (Zed, JetBrains, ...)")
    acp.set_defaults(func=cmd_acp)

    config = sub.add_parser("config", help="show or check the layered config")
    config_sub = config.add_subparsers(dest="config_command", required=True)
    show = config_sub.add_parser("show", help="the effective config")
    show.add_argument("--explain", action="store_true", help="name the source of every value")
    show.add_argument("--json", action="store_true", help="JSON shaped like the TOML")
    show.add_argument("--workspace", metavar="DIR", help="workspace folder (default: current directory)")
    show.set_defaults(func=cmd_config_show)
    check = config_sub.add_parser("check", help="validate one TOML file")
    check.add_argument("file")
    check.set_defaults(func=cmd_config_check)
    path = config_sub.add_parser("path", help="where the config files are")
    path.add_argument("--workspace", metavar="DIR")
    path.set_defaults(func=cmd_config_path)

    demo = sub.add_parser("demo", help="show what tinyarms does on this machine, no key needed")
    demo.add_argument("--workspace", metavar="DIR")
    demo.set_defaults(func=cmd_demo)
    add_complete_parser(sub)

    models = sub.add_parser("models", help="model files: pull hf: models, list the cache")
    models_sub = models.add_subparsers(dest="models_command", required=True)
    pull = models_sub.add_parser("pull", help="download hf:owner/repo/file.gguf into the cache (resumes, checks)")
    pull.add_argument("specs", nargs="+", metavar="hf:owner/repo/file.gguf")
    pull.add_argument("--revision", default="main", help="branch, tag or commit (default: main)")
    pull.add_argument("--force", action="store_true", help="download again even if the cached file checks out")
    pull.set_defaults(func=cmd_models_pull)
    listing = models_sub.add_parser("list", help="cached models, sizes, and which tier uses which")
    listing.add_argument("--json", action="store_true")
    listing.add_argument("--workspace", metavar="DIR")
    listing.set_defaults(func=cmd_models_list)

    setup = sub.add_parser("setup", help="set up an editor")
    setup_sub = setup.add_subparsers(dest="setup_command", required=True)
    nvim = setup_sub.add_parser("nvim", help="the init.lua lines for Neovim 0.11+ (--write adds them)")
    nvim.add_argument("--write", action="store_true", help="add them to your Neovim config, after asking")
    nvim.add_argument("--yes", action="store_true", help="do not ask")
    nvim.add_argument("--lazy", action="store_true", help="a lazy.nvim spec (lua/plugins/tinyarms.lua) instead")
    nvim.add_argument("--python", help="the Python that runs the server (default: this one)")
    nvim.set_defaults(func=cmd_setup_nvim)
    add_cloud_commands(sub)
    add_router_commands(sub)

    # `-v` also after the subcommand (`tinyarms serve -v`), as editors' configs write it.
    for subparser in sub.choices.values():
        subparser.add_argument("-v", "--verbose", action="count", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logs.setup(args.verbose)
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
