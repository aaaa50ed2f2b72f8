"""`tinyarms init`: from "which provider?" to a commented config file that works.

The choices are data (`CHOICES`): each names the provider, the preset it builds on, the
tiers it points at the endpoint, and the defaults to offer. The endpoint is checked
(`probe.py`) before anything is written; a file that exists is kept as `FILE.bak`.
"""

from __future__ import annotations

import datetime
import json
from pathlib import Path

from attrs import define, field

from tinyarms.atomic import write_bytes, write_text
from tinyarms.firstrun.probe import Probe


@define(frozen=True)
class Choice:
    key: str  # what --provider takes
    label: str
    provider: str  # the tier's provider ("" for local only)
    preset: str  # what the file extends
    tiers: tuple[str, ...]  # the tiers pointed at the endpoint
    base_url: str = ""
    key_env: str = ""  # the usual variable for the key ("" = no key)
    model: str = ""  # offered when the server lists none


CHOICES: dict[str, Choice] = {
    c.key: c
    for c in (
        Choice(
            "openai", "OpenAI-compatible server (OpenAI, vLLM, OpenRouter, LM Studio, ...)", "openai", "default",
            ("cloud-fast", "cloud-strong"), "https://api.openai.com/v1", "OPENAI_API_KEY", "gpt-4o-mini",
        ),
        Choice(
            "anthropic", "Anthropic", "anthropic", "default", ("cloud-fast", "cloud-strong"),
            "https://api.anthropic.com/v1", "ANTHROPIC_API_KEY", "claude-haiku-4-5",
        ),
        Choice("ollama", "Ollama on this machine", "openai", "ollama", ("ollama",), "http://127.0.0.1:11434/v1"),
        Choice(
            "llama-server", "a llama-server (llama.cpp) you run", "openai", "llama-server", ("llama-server",),
            "http://127.0.0.1:8080/v1", "", "local",
        ),
        Choice("local", "local only: the embedded model, nothing leaves the machine", "", "local-only", ()),
    )
}  # fmt: skip


@define
class Plan:
    choice: Choice
    preset: str
    base_url: str = ""
    key_env: str = ""
    model: str = ""
    probe: Probe | None = None
    notes: list[str] = field(factory=list)


def _q(value: str) -> str:
    return json.dumps(value)


def file_text(plan: Plan, schema_uri: str) -> str:
    """The commented TOML `init` writes."""
    choice = plan.choice
    today = datetime.date.today().isoformat()
    where = f" at {plan.base_url}" if plan.base_url else ""
    lines = [
        f"#:schema {schema_uri}",
        f"# tinyarms config, written by `tinyarms init` on {today}: {choice.label}{where}.",
        "# Every key is optional; what this file does not set comes from the preset it extends.",
        "# `tinyarms config show --explain` shows every value and where it came from;",
        "# `tinyarms doctor` checks that every tier answers.",
        "",
        f"extends = {_q(plan.preset)}",
    ]
    if plan.probe is not None:
        checked = f"{plan.probe.how} answered in {plan.probe.latency_ms:.0f} ms"
        lines += ["", f"# The endpoint was checked when this file was written ({checked})."]
    for index, tier in enumerate(choice.tiers):
        role_note = {
            "cloud-fast": "chat and edit start here",
            "cloud-strong": "the agent starts here; chat and edit escalate to it",
        }.get(tier, "chat, edit and agent run here; a failure falls back to the local model")
        lines += ["", f"[tiers.{tier}]                          # {role_note}"]
        lines.append(f"provider = {_q(choice.provider)}")
        lines.append(f"base_url = {_q(plan.base_url)}")
        lines.append(f"model = {_q(plan.model)}" + ("" if index else "                # any model the server lists"))
        if plan.key_env:
            lines.append(f"api_key_env = {_q(plan.key_env)}         # the variable that holds the key; never the key")
        elif choice.key_env:  # the preset's tier names a key variable: this server needs none
            lines.append('api_key_env = ""                 # no key for this server')
    if not choice.tiers:
        lines += [
            "",
            "# Every role runs on the in-process model (embedded:gemma3-270m): no key, no server.",
            "# A bigger local model: [tiers.local] model = \"hf:owner/repo/file.gguf\" (`tinyarms models pull`).",
        ]
    lines += [
        "",
        "# Spend limits in USD (0 = none); at the limit paid tiers are skipped and the local model answers.",
        "# [budgets]",
        "# daily_usd = 1.0",
    ]
    return "\n".join(lines) + "\n"


def write(path: Path, text: str) -> Path | None:
    """Write `text` to `path`, keeping an existing file as PATH.bak. Returns the backup.

    Both go through a fresh temporary file and a rename, so a symlink planted at PATH or
    PATH.bak (a cloned repository's `.tinyarms.toml -> ~/.bashrc`) is replaced, never
    written through."""
    backup = None
    if path.is_file() and not path.is_symlink():
        backup = path.with_name(path.name + ".bak")
        write_bytes(backup, path.read_bytes())
    write_text(path, text)
    return backup
