"""What every command group shares: one way to declare subcommands (`group`, `command`,
`arg`), the workspace option, and loading the config or exiting with the problems
(every problem goes to stderr with its severity and line; a config with errors exits 1
after saying so)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from attrs import define, field

if TYPE_CHECKING:
    from tinyarms.config import Config, ConfigInputs, LoadResult

Subparsers = Any  # argparse's _SubParsersAction, which it does not export


@define(frozen=True)
class Arg:
    """One `add_argument` call, as data."""

    names: tuple[str, ...]
    options: dict[str, Any] = field(factory=dict)


def arg(*names: str, **options: Any) -> Arg:
    return Arg(names, options)


def flag(name: str, help: str) -> Arg:
    return Arg((name,), {"action": "store_true", "help": help})


WORKSPACE = arg("--workspace", metavar="DIR", help="workspace folder (default: current directory)")


def group(sub: Subparsers, name: str, help: str) -> Subparsers:
    """`tinyarms NAME SUBCOMMAND ...`: a command whose subcommands are added with `command`."""
    return sub.add_parser(name, help=help).add_subparsers(dest=f"{name}_command", required=True)


def command(sub: Subparsers, name: str, help: str, func: Callable[[argparse.Namespace], int], *args: Arg) -> None:
    parser = sub.add_parser(name, help=help)
    for argument in args:
        parser.add_argument(*argument.names, **argument.options)
    parser.set_defaults(func=func)


def inputs(args: argparse.Namespace) -> ConfigInputs:
    from tinyarms.config import ConfigInputs

    workspace = Path(args.workspace).resolve() if getattr(args, "workspace", None) else Path.cwd()
    return ConfigInputs(workspace=workspace)


def load(args: argparse.Namespace) -> LoadResult:
    """The layered config for the command's workspace, every problem printed to stderr."""
    from tinyarms.config import load_config

    result = load_config(inputs(args))
    for problem in result.problems:
        print(f"{problem.severity}: {problem}", file=sys.stderr)
    return result


@define
class Loaded:
    config: Config
    result: LoadResult  # with provenance, for `config show` and the demo's summary


def load_or_exit(args: argparse.Namespace) -> Loaded:
    """The config, or exit 1 after the problems that stop it."""
    result = load(args)
    if result.config is None:
        print("tinyarms: the config has errors (above)", file=sys.stderr)
        raise SystemExit(1)
    return Loaded(result.config, result)


def prepare_router(config: Config, args: argparse.Namespace) -> None:
    """A fresh install's one-time encoder export, before a command routes: one line of ours,
    not the libraries' chatter (router/prepare.py). Only on the command line: the language
    server's stdout is its transport, so it never redirects file descriptors."""
    from tinyarms.router.encoder import EncoderError
    from tinyarms.router.prepare import prepare

    if not config.router.enabled:
        return
    try:
        prepare(config.router.encoder, config.router.backend, threads=config.router.threads,
                verbose=getattr(args, "verbose", 0) > 0)  # fmt: skip
    except EncoderError as exc:
        print(f"router: {exc}", file=sys.stderr)  # routing falls back to router.fallback_role
