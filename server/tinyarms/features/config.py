"""The config feature: load at start, reload on change, diagnostics on broken files,
and `tinyarms.showConfig`.

A broken file never takes the server down: the last good config stays in effect,
the problems go to the editor as diagnostics at their lines, and the log says so.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
from lsprotocol import types
from pygls.uris import from_fs_path, to_fs_path

from tinyarms.config import ROLE_NAMES, Config, ConfigInputs, LoadResult, Problem, is_config_file, load_best
from tinyarms.config.explain import explained, roles_summary, to_toml
from tinyarms.config.layers import user_config_file
from tinyarms.features.base import Feature, Settings, Status

if TYPE_CHECKING:
    from pygls.lsp.server import LanguageServer

log = logging.getLogger(__name__)

POLL_SECONDS = 1.0


def problem_to_diagnostic(problem: Problem) -> types.Diagnostic:
    line = max((problem.line or 1) - 1, 0)
    return types.Diagnostic(
        range=types.Range(start=types.Position(line, 0), end=types.Position(line + 1, 0)),
        message=problem.message,
        severity=types.DiagnosticSeverity.Error if problem.severity == "error" else types.DiagnosticSeverity.Warning,
        source="tinyarms",
        code=problem.key,
    )


class ConfigFeature(Feature):
    def __init__(
        self, server: LanguageServer, settings: Settings, status: Status, on_change: Callable[[Config], None]
    ) -> None:
        super().__init__(server, settings, status)
        self.on_change = on_change  # server.py: tell every other feature
        self.inputs = ConfigInputs()
        self.init_settings: dict[str, Any] = {}  # initializationOptions, below workspace/configuration
        self.result: LoadResult | None = None  # the result in effect (last good)
        self.latest: LoadResult | None = None  # the newest attempt, good or not
        self._diagnosed: set[Path] = set()
        self.buffers: dict[Path, str] = {}  # config files open in the editor, as typed
        self._mtimes: dict[Path, float | None] = {}
        self._poller: asyncio.Task[None] | None = None

    # -- inputs from the client ------------------------------------------------------

    def set_initialize_params(self, params: types.InitializeParams) -> None:
        root = None
        if params.workspace_folders:
            root = to_fs_path(params.workspace_folders[0].uri)
        elif params.root_uri:
            root = to_fs_path(params.root_uri)
        elif params.root_path:
            root = params.root_path
        options = dict(params.initialization_options or {})
        trusted = bool(options.pop("workspaceTrusted", False))
        self.init_settings = options
        self.inputs = attrs.evolve(
            self.inputs,
            workspace=Path(root) if root else None,
            editor_settings=options or None,
            editor_trusts_workspace=trusted,
        )

    async def pull_editor_settings(self) -> None:
        """workspace/configuration section `tinyarms`, on top of initializationOptions."""
        caps = self.server.client_capabilities.workspace
        if not (caps and caps.configuration):
            return
        scope = from_fs_path(str(self.inputs.workspace)) if self.inputs.workspace else None
        try:
            answer = await asyncio.wait_for(
                self.server.workspace_configuration_async(
                    types.ConfigurationParams(items=[types.ConfigurationItem(scope_uri=scope, section="tinyarms")])
                ),
                timeout=5,
            )
        except Exception as exc:  # a client that never answers must not stall start-up
            log.warning("workspace/configuration failed: %s", exc)
            return
        settings = answer[0] if answer and isinstance(answer[0], dict) else {}
        merged = deep_merge(self.init_settings, settings)
        self.inputs = attrs.evolve(self.inputs, editor_settings=merged or None)

    async def settings_changed(self, params: types.DidChangeConfigurationParams) -> None:
        """workspace/didChangeConfiguration: the pushed `tinyarms` section, or pull it."""
        settings = params.settings.get("tinyarms") if isinstance(params.settings, dict) else None
        if isinstance(settings, dict):
            self.inputs.editor_settings = deep_merge(self.init_settings, settings)
        else:
            await self.pull_editor_settings()
        self.reload("editor settings changed")

    # -- lifecycle -------------------------------------------------------------------

    async def initialized(self) -> None:
        try:
            await self.pull_editor_settings()
            self.reload("start")
        finally:
            self.settings.loaded.set()
        await self.watch_files()

    def shutdown(self) -> None:
        if self._poller:
            self._poller.cancel()

    def reload(self, reason: str) -> LoadResult | None:
        """Load every layer again; adopt the result only if it is valid."""
        first, usable = load_best(self.inputs)
        self.latest = first
        self.publish_diagnostics(first)
        for problem in first.problems:
            if problem.severity == "warning":
                log.warning("config: %s", problem)
        if first.config is not None or (self.result is None and usable.config is not None):
            self.result = usable
            if first.config is None:
                log.error(
                    "config (%s): broken files left out, running without them: %s",
                    reason,
                    "; ".join(map(str, first.errors)),
                )
            else:
                log.info("config loaded (%s): %s", reason, ", ".join(roles_summary(usable)))
            assert usable.config is not None
            self.settings.config = usable.config
            self.on_change(usable.config)
            self._remember_mtimes()
            return usable
        kept = "keeping the last good config" if self.result else "no valid config yet"
        log.error("config (%s) has errors, %s: %s", reason, kept, "; ".join(map(str, first.errors)))
        self._remember_mtimes()
        return None

    # -- diagnostics -----------------------------------------------------------------

    def publish_diagnostics(self, from_disk: LoadResult | None = None) -> None:
        """Diagnostics follow what the user sees: open buffers, else the files on disk."""
        if self.buffers or from_disk is None:
            from_disk, _ = load_best(attrs.evolve(self.inputs, texts=dict(self.buffers)))
        self.publish(from_disk)

    def publish(self, result: LoadResult) -> None:
        by_file: dict[Path, list[types.Diagnostic]] = {path: [] for path in self._diagnosed}
        for path in result.files:
            by_file.setdefault(path, [])
        for problem in result.problems:
            if problem.file is not None and problem.source and problem.source.kind != "preset":
                by_file.setdefault(problem.file, []).append(problem_to_diagnostic(problem))
        for path, diagnostics in by_file.items():
            self.server.text_document_publish_diagnostics(
                types.PublishDiagnosticsParams(uri=from_fs_path(str(path)) or str(path), diagnostics=diagnostics)
            )
        self._diagnosed = {path for path, diagnostics in by_file.items() if diagnostics}

    def _buffer_path(self, uri: str) -> Path | None:
        path = to_fs_path(uri)
        return Path(path) if path and is_config_file(Path(path)) else None

    def document_opened(self, params: types.DidOpenTextDocumentParams) -> None:
        if path := self._buffer_path(params.text_document.uri):
            self.buffers[path] = params.text_document.text
            self.publish_diagnostics()

    def document_changed(self, params: types.DidChangeTextDocumentParams) -> None:
        # Unsaved text is checked as it would load, but applies only when saved.
        if path := self._buffer_path(params.text_document.uri):
            self.buffers[path] = self.server.workspace.get_text_document(params.text_document.uri).source
            self.publish_diagnostics()

    def document_saved(self, params: types.DidSaveTextDocumentParams) -> None:
        if self._buffer_path(params.text_document.uri):
            self.reload("saved")

    def document_closed(self, params: types.DidCloseTextDocumentParams) -> None:
        if (path := self._buffer_path(params.text_document.uri)) and self.buffers.pop(path, None) is not None:
            self.publish_diagnostics()

    # -- watching --------------------------------------------------------------------

    def watched_paths(self) -> list[Path]:
        paths = [self.inputs.user_file or user_config_file()]
        if self.inputs.workspace:
            paths += [self.inputs.workspace / ".tinyarms.toml", self.inputs.workspace / "pyproject.toml"]
        if self.latest:
            paths += [p for p in self.latest.files if p not in paths]
        return paths

    def _remember_mtimes(self) -> None:
        self._mtimes = {path: _mtime(path) for path in self.watched_paths()}

    def files_changed(self, params: types.DidChangeWatchedFilesParams) -> None:
        changed = [to_fs_path(change.uri) for change in params.changes]
        if any(path and Path(path) in self.watched_paths() for path in changed):
            self.reload("file changed")

    async def watch_files(self) -> None:
        """Ask the client to watch config files; poll mtimes if it cannot."""
        caps = self.server.client_capabilities.workspace
        watch = caps.did_change_watched_files if caps else None
        if watch and watch.dynamic_registration:
            watchers = [types.FileSystemWatcher(glob_pattern=str(path)) for path in self.watched_paths()]
            watchers.append(types.FileSystemWatcher(glob_pattern="**/.tinyarms.toml"))
            try:
                await asyncio.wait_for(
                    self.server.client_register_capability_async(
                        types.RegistrationParams(
                            registrations=[
                                types.Registration(
                                    id="tinyarms-config-watch",
                                    method=types.WORKSPACE_DID_CHANGE_WATCHED_FILES,
                                    register_options=types.DidChangeWatchedFilesRegistrationOptions(watchers=watchers),
                                )
                            ]
                        )
                    ),
                    timeout=5,
                )
                log.info("config: the client watches %d config paths", len(watchers))
                return
            except Exception as exc:
                log.warning("config: file watch registration failed (%s); polling instead", exc)
        self._poller = asyncio.create_task(self._poll())

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(POLL_SECONDS)
            current = {path: _mtime(path) for path in self.watched_paths()}
            if current != self._mtimes:
                self.reload("file changed")

    # -- commands --------------------------------------------------------------------

    async def show_status(self) -> dict[str, Any]:
        """`tinyarms.status`: roles, tiers and models in effect, and the last completion and decision."""
        config = await self.settings.wait_loaded(timeout=30)
        tiers = {
            name: {"provider": tier.provider, "model": tier.model}
            for name, tier in (config.tiers if config else {}).items()
        }
        roles = {name: attrs.asdict(config.roles.get(name)) for name in ROLE_NAMES} if config else {}
        return {
            "roles": roles,
            "tiers": tiers,
            "summary": roles_summary(self.result) if self.result and self.result.config else [],
            "last_completion": self.status.last.get("completion"),
            "last_decision": self.status.last.get("decision"),
            **{k: v for k, v in self.status.last.items() if k not in ("completion", "decision")},
        }

    async def show_config(self) -> dict[str, Any]:
        """`tinyarms.showConfig`: the effective config with the source of every value, and any problems."""
        await self.settings.wait_loaded(timeout=30)
        result = self.result
        latest = self.latest
        return {
            "config": explained(result) if result and result.config else None,
            "text": to_toml(result, explain=True) if result and result.config else "",
            "summary": roles_summary(result) if result and result.config else [],
            "trusted": bool(result and result.trusted),
            "files": [str(p) for p in (result.files if result else [])],
            "problems": [
                {
                    "message": p.message,
                    "severity": p.severity,
                    "file": str(p.file) if p.file else None,
                    "line": p.line,
                    "key": p.key,
                }
                for p in (latest.problems if latest else [])
            ],
            "using_last_good": bool(latest and latest.config is None and result),
        }


def deep_merge(low: dict[str, Any], high: dict[str, Any]) -> dict[str, Any]:
    merged = dict(low)
    for key, value in high.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _mtime(path: Path) -> float | None:
    try:
        return path.stat().st_mtime_ns / 1e9
    except OSError:
        return None
