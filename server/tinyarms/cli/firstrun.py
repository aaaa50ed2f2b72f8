"""`tinyarms init` and `tinyarms doctor`: set tinyarms up on a new machine, and check it
(the logic is in firstrun/; this is the terminal side: questions, flags, messages)."""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
from pathlib import Path

from tinyarms.cli.common import Subparsers, arg, command, flag

ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def register(sub: Subparsers) -> None:
    from tinyarms.firstrun.init import CHOICES

    command(
        sub, "init", "write a config for your provider, after checking the endpoint answers", cmd_init,
        flag("--workspace", "write .tinyarms.toml here instead of the user file"),
        arg("--preset", metavar="NAME", help="the preset the file extends (shipped or installed)"),
        arg("--provider", choices=sorted(CHOICES), help="where chat, edit and agent run"),
        arg("--base-url", metavar="URL", help="the API root, e.g. http://127.0.0.1:8000/v1"),
        arg("--key-env", metavar="VAR", help="the environment variable that holds the key ('' for none)"),
        arg("--model", help="the model name (default: the first the server lists)"),
        flag("--yes", "ask nothing: flags and defaults; replace an existing file (kept as .bak)"),
    )  # fmt: skip
    command(
        sub, "doctor", "what is installed, which models load, which tiers answer, what to fix", cmd_doctor,
        arg("--workspace", metavar="DIR", help="the folder to check (default: the current one)"),
        flag("--no-load", "do not load local models (quicker)"),
    )  # fmt: skip


class _Asker:
    """Questions on a terminal; with --yes or no terminal, the flag or the default."""

    def __init__(self, interactive: bool) -> None:
        self.interactive = interactive

    def ask(self, question: str, default: str) -> str:
        if not self.interactive:
            return default
        try:
            answer = input(f"{question} [{default}]: " if default else f"{question}: ").strip()
        except EOFError:
            return default
        return answer or default

    def pick(self, question: str, options: dict[str, str], default: str) -> str:
        if not self.interactive:
            return default
        keys = list(options)
        for number, key in enumerate(keys, 1):
            print(f"  {number}. {options[key]}")
        while True:
            answer = self.ask(question, str(keys.index(default) + 1))
            if answer.isdigit() and 1 <= int(answer) <= len(keys):
                return keys[int(answer) - 1]
            if answer in options:
                return answer
            print(f"  pick 1-{len(keys)}")

    def confirm(self, question: str) -> bool:
        return self.interactive and self.ask(f"{question} (y/N)", "n").lower() in ("y", "yes")


def cmd_init(args: argparse.Namespace) -> int:
    from tinyarms.config import ConfigInputs, load_config, user_config_file
    from tinyarms.config.jsonschema import SCHEMA_FILE
    from tinyarms.config.layers import WORKSPACE_FILE, find_preset
    from tinyarms.firstrun.init import CHOICES, Plan, file_text, write
    from tinyarms.firstrun.probe import probe

    asker = _Asker(interactive=not args.yes and sys.stdin.isatty())
    target = Path.cwd() / WORKSPACE_FILE if args.workspace else user_config_file()
    provider = args.provider
    if provider is None and asker.interactive:
        labels = {key: c.label for key, c in CHOICES.items()}
        provider = asker.pick("Where should chat, edit and agent run?", labels, "local")
    if provider is None:
        provider = "local" if args.preset else None
    if provider is None:
        print(f"tinyarms init: give --provider ({', '.join(CHOICES)}), or run it in a terminal", file=sys.stderr)
        return 2
    choice = CHOICES[provider]
    plan = Plan(choice, args.preset or choice.preset)
    if find_preset(plan.preset) is None:
        print(f"tinyarms init: no preset '{plan.preset}' (`tinyarms presets list` shows them)", file=sys.stderr)
        return 2

    if choice.tiers:
        plan.base_url = (args.base_url or asker.ask("API base URL", choice.base_url)).rstrip("/")
        if not plan.base_url.startswith(("http://", "https://")):
            print(f"tinyarms init: {plan.base_url!r} is not an http(s) URL", file=sys.stderr)
            return 2
        key_env = args.key_env if args.key_env is not None else None
        if key_env is None:
            key_env = asker.ask("Environment variable that holds the key (empty: no key)", choice.key_env)
        plan.key_env = key_env.strip()
        if plan.key_env and not ENV_NAME.match(plan.key_env):
            print(f"tinyarms init: {plan.key_env!r} is not an environment variable name; the key itself "
                  "never goes in the file", file=sys.stderr)  # fmt: skip
            return 2
        key = os.environ.get(plan.key_env, "").strip() if plan.key_env else None
        if plan.key_env and not key:
            print(f"tinyarms init: {plan.key_env} is not set; set it first (export {plan.key_env}=...), "
                  "then run init again. Nothing written.", file=sys.stderr)  # fmt: skip
            return 1
        print(f"checking {plan.base_url} ...", file=sys.stderr)
        result = probe(choice.provider, plan.base_url, key, model=args.model or choice.model or "local")
        if not result.ok:
            why = f"{plan.base_url} does not answer ({result.detail})"
            print(f"tinyarms init: {why}. Nothing written.", file=sys.stderr)
            return 1
        plan.probe = result
        listed = result.models
        print(f"  answered in {result.latency_ms:.0f} ms ({result.how})"
              + (f"; models: {', '.join(listed[:8])}" if listed else ""), file=sys.stderr)  # fmt: skip
        offered = args.model or (listed[0] if listed else choice.model)
        plan.model = args.model or asker.ask("Model", offered)
        if listed and plan.model not in listed:
            print(f"  note: the server does not list '{plan.model}'", file=sys.stderr)

    text = file_text(plan, SCHEMA_FILE.as_uri())
    if target.exists() and not args.yes and not asker.confirm(f"{target} exists; replace it (kept as .bak)?"):
        print(f"tinyarms init: {target} exists; nothing written (--yes replaces it, keeping a .bak)", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="tinyarms-init-") as scratch:
        (Path(scratch) / "config.toml").write_text(text, encoding="utf-8")
        checked = load_config(ConfigInputs(user_file=Path(scratch) / "config.toml", env={}))
    if checked.config is None:  # a bug in init, not the user's doing: say so and write nothing
        print("tinyarms init: the file would not load: " + "; ".join(map(str, checked.errors)), file=sys.stderr)
        return 1
    backup = write(target, text)
    print(f"wrote {target}" + (f" (the old one is {backup})" if backup else ""))
    if args.workspace and choice.tiers:
        print(f"  note: a workspace file's base_url and api_key_env apply only in a trusted folder: add "
              f'trusted_workspaces = ["{Path.cwd()}"] to {user_config_file()}')  # fmt: skip
    print('next: tinyarms doctor, then tinyarms ask "what does this project do?"')
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    from tinyarms.firstrun.doctor import run_checks

    workspace = Path(args.workspace).resolve() if args.workspace else Path.cwd()
    problems = run_checks(workspace, load_models=not args.no_load, out=sys.stdout)
    return 1 if problems else 0
