"""`tinyarms config show | check | path`: the layered config, with provenance."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tinyarms.cli.common import WORKSPACE, Subparsers, arg, command, flag, group, inputs, load_or_exit


def register(sub: Subparsers) -> None:
    config = group(sub, "config", "show or check the layered config")
    command(
        config, "show", "the effective config", cmd_show,
        flag("--explain", "name the source of every value"), flag("--json", "JSON shaped like the TOML"), WORKSPACE,
    )  # fmt: skip
    command(config, "check", "validate one TOML file", cmd_check, arg("file"))
    command(config, "path", "where the config files are", cmd_path, WORKSPACE)
    command(
        config, "schema", "the JSON Schema of tinyarms TOML files (for Taplo-based editors)", cmd_schema,
        flag("--path", "print where the shipped schema file is instead"),
    )  # fmt: skip


def cmd_show(args: argparse.Namespace) -> int:
    from tinyarms.config.explain import effective, explained, to_toml

    result = load_or_exit(args).result
    if args.json:
        tree = explained(result) if args.explain else effective(result)
        print(json.dumps(tree, indent=2))
    else:
        print(to_toml(result, explain=args.explain), end="")
    return 0


def cmd_check(args: argparse.Namespace) -> int:
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


def cmd_path(args: argparse.Namespace) -> int:
    from tinyarms.config import user_config_file
    from tinyarms.config.layers import installed_presets_dir, presets_dir, workspace_config_file

    workspace = inputs(args).workspace
    print(f"user file:      {user_config_file()}")
    print(f"workspace file: {workspace_config_file(workspace) if workspace else None}")
    print(f"presets:        {presets_dir()}")
    print(f"installed:      {installed_presets_dir()}")
    return 0


def cmd_schema(args: argparse.Namespace) -> int:
    from tinyarms.config.jsonschema import SCHEMA_FILE, shipped_schema_text

    if args.path:
        print(SCHEMA_FILE)
    else:
        sys.stdout.write(shipped_schema_text())
    return 0
