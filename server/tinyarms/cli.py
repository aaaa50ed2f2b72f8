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
    from tinyarms.config import ConfigInputs


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

    return asyncio.run(run())


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
