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
from typing import TYPE_CHECKING

from tinyarms import __version__, logs

if TYPE_CHECKING:
    from tinyarms.config import ConfigInputs
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
    return 0


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


def cmd_router_fit(args: argparse.Namespace) -> int:
    from tinyarms.router.fit import LabelledFileError, fit, load_labelled, thresholds_toml

    try:
        rows = load_labelled(Path(args.file))
    except LabelledFileError as exc:
        print(exc, file=sys.stderr)
        return 2
    router = _load_router(args)
    if router is None:
        return 1
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
    from tinyarms.router.fit import LabelledFileError, evaluate, load_labelled

    try:
        rows = load_labelled(Path(args.file))
    except LabelledFileError as exc:
        print(exc, file=sys.stderr)
        return 2
    router = _load_router(args)
    if router is None:
        return 1
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
