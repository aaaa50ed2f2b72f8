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
from tinyarms.config.layers import Source, user_config_file
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
        self._refresh: asyncio.Future[None] | None = None  # the reload running, if any
        self._wanted: tuple[str, str] | None = None  # ("reload" | "diagnostics", reason) to do next

    # -- inputs from the client ------------------------------------------------------

    def set_initialize_params(self, params: types.InitializeParams) -> None:
        root = None
        if params.workspace_folders:
            root = to_fs_path(params.workspace_folders[0].uri)
        elif params.root_uri:
            root = to_fs_path(params.root_uri)
        elif params.root_path:
            root = params.root_path
        raw = params.initialization_options
        if raw is not None and not isinstance(raw, dict):
            log.warning("initializationOptions is %s, not an object; ignored", type(raw).__name__)
            raw = None
        options = dict(raw or {})
        flag = options.pop("workspaceTrusted", False)
        if not isinstance(flag, bool):  # "false" is a non-empty string, not trust
            log.warning("initializationOptions.workspaceTrusted is %r, not true or false; not trusted", flag)
        trusted = flag is True
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
            await self.settled()
        finally:
            self.settings.loaded.set()
        await self.watch_files()

    def shutdown(self) -> None:
        if self._poller:
            self._poller.cancel()

    def reload(self, reason: str) -> None:
        """Load every layer again, off the event loop; adopt the result only if it is valid.

        Loading reads and validates files (a 400 KB file takes a second or more): it runs in
        a thread so typing and completions go on. Reloads asked for while one runs are done
        once, after it; requests that read the config wait for it (`settings.loaded`).
        """
        self._wanted = ("reload", reason)
        self._start_refresh()

    def _start_refresh(self) -> None:
        if self._wanted and self._wanted[0] == "reload" and self.result is not None:
            self.settings.loaded.clear()  # requests that read the config wait for this reload
        if self._refresh is None or self._refresh.done():
            self._refresh = asyncio.ensure_future(self._refresh_loop())

    async def settled(self) -> None:
        """Wait until no reload is pending."""
        while self._refresh is not None and not self._refresh.done():
            await asyncio.shield(self._refresh)

    async def _refresh_loop(self) -> None:
        try:
            while self._wanted is not None:
                (what, reason), self._wanted = self._wanted, None
                inputs, buffers = self.inputs, dict(self.buffers)
                loaded: tuple[LoadResult, LoadResult] | None = None
                try:
                    if what == "reload":
                        loaded = await asyncio.to_thread(load_best, inputs)
                    if buffers or loaded is None:
                        diagnosed, _ = await asyncio.to_thread(load_best, attrs.evolve(inputs, texts=buffers))
                    else:
                        diagnosed = loaded[0]
                except Exception as exc:  # a bug or a file no check foresaw: keep serving
                    log.exception("config (%s) could not be loaded", reason)
                    diagnosed = _failed(inputs, exc)
                    loaded = (diagnosed, diagnosed) if what == "reload" else None
                try:
                    self.publish(diagnosed)
                    if loaded is not None:
                        self._adopt(*loaded, reason)
                except Exception:
                    log.exception("config (%s): applying the result failed", reason)
        finally:
            if self._wanted is None:
                self.settings.loaded.set()

    def _adopt(self, first: LoadResult, usable: LoadResult, reason: str) -> None:
        self.latest = first
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
        else:
            kept = "keeping the last good config" if self.result else "no valid config yet"
            log.error("config (%s) has errors, %s: %s", reason, kept, "; ".join(map(str, first.errors)))
        self._remember_mtimes()

    # -- diagnostics -----------------------------------------------------------------

    def publish_diagnostics(self) -> None:
        """Diagnostics follow what the user sees: open buffers, else the files on disk
        (loaded off the event loop, like a reload; a pending reload publishes them too)."""
        if self._wanted is None:
            self._wanted = ("diagnostics", "buffer changed")
        self._start_refresh()

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
            try:  # nothing a file does may stop the polling
                current = {path: _mtime(path) for path in self.watched_paths()}
                if current != self._mtimes:
                    self._mtimes = current
                    self.reload("file changed")
            except Exception:
                log.exception("config: polling failed once; polling on")

    # -- commands --------------------------------------------------------------------

    async def show_status(self) -> dict[str, Any]:
        """`tinyarms.status`: roles, tiers and models in effect, and the last completion and decision."""
        await self.settings.wait_loaded(timeout=30)
        await self.settled()
        config = self.settings.config
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
        await self.settled()
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


def _failed(inputs: ConfigInputs, exc: Exception) -> LoadResult:
    """The result of a load that raised: one problem at the workspace file (or the user file)."""
    candidates = [inputs.workspace / ".tinyarms.toml", inputs.workspace / "pyproject.toml"] if inputs.workspace else []
    path = next((p for p in candidates if p.is_file()), inputs.user_file or user_config_file())
    message = f"the config could not be loaded ({type(exc).__name__}: {exc}); the last good config stays"
    return LoadResult(None, {}, {}, [Problem(message, source=Source("workspace", path=path))], [path])


def _mtime(path: Path) -> float | None:
    try:
        return path.stat().st_mtime_ns / 1e9
    except OSError:
        return None
