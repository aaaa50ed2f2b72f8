"""Build the effective config from every layer, with sources and workspace trust."""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs
from attrs import define, field

from tinyarms.config.layers import (
    DEFAULT_SOURCE,
    Layer,
    Problem,
    Source,
    dict_layer,
    env_layer,
    environ,
    find_preset,
    get_in,
    merge_into,
    preset_names,
    read_file_layer,
    user_config_file,
    workspace_config_file,
)
from tinyarms.config.locate import KeyPath
from tinyarms.config.schema import Config
from tinyarms.config.trust import apply_trust
from tinyarms.config.validate import converter, validate

DEFAULT_PRESET = "default"


@define
class ConfigInputs:
    """Everything the effective config depends on."""

    workspace: Path | None = None
    user_file: Path | None = None  # None: the platformdirs location
    editor_settings: Mapping[str, Any] | None = None
    editor_trusts_workspace: bool = False
    env: Mapping[str, str] = field(factory=environ)
    # Unsaved editor buffers, by path, read instead of the file on disk.
    texts: Mapping[Path, str] = field(factory=dict)
    # Files left out (the server drops a broken file and keeps the rest).
    exclude: frozenset[Path] = frozenset()


@define
class LoadResult:
    config: Config | None
    data: dict[str, Any]
    sources: dict[KeyPath, Source]
    problems: list[Problem]
    files: list[Path]  # every file that was read, for watching
    trusted: bool = False

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    def source(self, path: KeyPath) -> Source:
        """Where the value at `path` came from; a key no layer set is a built-in default."""
        return self.sources.get(path, DEFAULT_SOURCE)


def _is_path(extends: str) -> bool:
    return extends.endswith(".toml") or "/" in extends or "\\" in extends


def _read(path: Path, kind: Any, inputs: ConfigInputs, name: str = "") -> Layer:
    return read_file_layer(path, kind, text=inputs.texts.get(path), name=name)


def load_preset_chain(name: str, seen: tuple[str, ...] = ()) -> tuple[list[Layer], list[Problem]]:
    """A preset and the presets it extends, lowest first."""
    if name in seen:
        cycle = " -> ".join(seen + (name,))
        return [], [Problem(f"extends cycle: {cycle}", key="extends")]
    found = find_preset(name)
    if found is None:
        close = difflib.get_close_matches(name, preset_names(), n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        return [], [Problem(f"unknown preset '{name}'{hint} (presets: {', '.join(preset_names())})", key="extends")]
    layer = read_file_layer(found.path, "preset", name=name)
    if found.installed:  # `config show --explain` says where an installed preset came from
        layer.sources = {key: attrs.evolve(s, origin=found.describe()) for key, s in layer.sources.items()}
    layer.data.pop("preset", None)  # the preset's own name/version/description, not config
    parent = layer.data.pop("extends", None)
    if not isinstance(parent, str):
        return [layer], list(layer.problems)
    chain, problems = load_preset_chain(parent, seen + (name,))
    for p in problems:
        p.source = p.source or layer.sources.get(("extends",))
    return chain + [layer], problems + layer.problems


MAX_EXTENDS = 32  # files in one `extends` chain; a longer chain is a problem, not a deep recursion


def _file_chain(
    path: Path, kind: Any, inputs: ConfigInputs, *, follow: bool = True
) -> tuple[list[Layer], str | None, list[Problem]]:
    """A user or workspace file and the files it `extends` by path, lowest first.

    Returns the layers, the preset name this chain asks for (if any), and problems. With
    `follow` false (an untrusted workspace) `extends` is left in the layer, unread, for
    the trust check to refuse at its line.
    """
    layers: list[Layer] = []
    problems: list[Problem] = []
    seen: set[Path] = set()
    preset: str | None = None
    while True:
        layer = _read(path, kind, inputs)
        layers.insert(0, layer)
        problems += layer.problems
        seen.add(path.resolve())
        if not follow or "extends" not in layer.data:
            break
        extends = layer.data.pop("extends")
        source = layer.sources.get(("extends",))
        if not isinstance(extends, str):
            problems.append(Problem("extends must be a string", source=source, key="extends"))
            break
        if not _is_path(extends):
            layer.data["extends"] = extends  # keep it, so `config show` can say where it came from
            preset = extends
            break
        target = (path.parent / extends).expanduser().resolve()
        if target in seen:
            problems.append(Problem(f"extends cycle through {target}", source=source, key="extends"))
            break
        if not target.is_file():
            problems.append(Problem(f"extends: no such file {target}", source=source, key="extends"))
            break
        if target in inputs.exclude:
            break  # a broken file of the chain, left out (see load_best)
        if len(layers) >= MAX_EXTENDS:
            problems.append(Problem(f"extends: more than {MAX_EXTENDS} files in a chain", source=source, key="extends"))
            break
        path = target
    return layers, preset, problems


def _workspace_trusted(workspace: Path, user_data: dict[str, Any], inputs: ConfigInputs) -> bool:
    if inputs.editor_trusts_workspace:
        return True
    folder = workspace.resolve()
    for entry in user_data.get("trusted_workspaces") or []:
        if isinstance(entry, str):
            trusted = Path(entry).expanduser().resolve()
            if folder == trusted or trusted in folder.parents:
                return True
    return False


def load_config(inputs: ConfigInputs | None = None) -> LoadResult:
    """Read, merge and validate every layer. Never raises on bad config."""
    inputs = inputs or ConfigInputs()
    problems: list[Problem] = []
    files: list[Path] = []
    user_path = inputs.user_file or user_config_file()

    # Layers above the preset, in order, so we know which preset they ask for.
    user_layers: list[Layer] = []
    preset_choice: tuple[str, Layer | None] = (DEFAULT_PRESET, None)
    if user_path.is_file() and user_path not in inputs.exclude:
        user_layers, asked, more = _file_chain(user_path, "user", inputs)
        problems += more
        files += [layer.path for layer in user_layers if layer.path]
        if asked:
            preset_choice = (asked, user_layers[-1])

    user_data: dict[str, Any] = {}
    for layer in user_layers:
        merge_into(user_data, {}, layer)

    workspace_layers: list[Layer] = []
    trusted = False
    ws_file = workspace_config_file(inputs.workspace) if inputs.workspace else None
    if inputs.workspace and (inputs.workspace / ".tinyarms.toml") in inputs.texts:
        ws_file = inputs.workspace / ".tinyarms.toml"
    if inputs.workspace and ws_file and ws_file not in inputs.exclude:
        trusted = _workspace_trusted(inputs.workspace, user_data, inputs)
        workspace_layers, asked, more = _file_chain(ws_file, "workspace", inputs, follow=trusted)
        problems += more
        files += [layer.path for layer in workspace_layers if layer.path]
        if asked and trusted:
            preset_choice = (asked, workspace_layers[-1])
        for layer in workspace_layers:
            if "trusted_workspaces" in layer.data:
                problems.append(
                    Problem(
                        f"ignored 'trusted_workspaces': only the user file ({user_path}) can trust a folder",
                        severity="warning",
                        source=layer.sources.get(("trusted_workspaces",)),
                        key="trusted_workspaces",
                    )
                )
                del layer.data["trusted_workspaces"]

    top_level = {f.name for f in attrs.fields(Config)}
    editor = dict_layer(inputs.editor_settings or {}, "editor")
    if isinstance(editor.data.get("extends"), str):
        preset_choice = (editor.data["extends"], editor)

    # The preset chain is the bottom layer.
    preset_name, chooser = preset_choice
    preset_layers, more = load_preset_chain(preset_name)
    for p in more:
        if p.source is None and chooser is not None:
            p.source = chooser.sources.get(("extends",), Source(chooser.kind, chooser.name, chooser.path))
    problems += more

    data: dict[str, Any] = {}
    sources: dict[KeyPath, Source] = {}
    for layer in preset_layers + user_layers:
        merge_into(data, sources, layer)
    for layer in workspace_layers:
        if not trusted:
            problems += apply_trust(layer, data, user_path)
        merge_into(data, sources, layer)
    merge_into(data, sources, editor)
    env = env_layer(inputs.env, top_level, data)
    if isinstance(env.data.get("extends"), str) and env.data["extends"] != data.get("extends"):
        # Switching the preset from the environment: rebuild from that preset.
        env_preset = env.data["extends"]
        chain, more = load_preset_chain(env_preset)
        problems += [attrs.evolve(p, source=p.source or env.sources.get(("extends",))) for p in more]
        base: dict[str, Any] = {}
        base_sources: dict[KeyPath, Source] = {}
        for layer in chain + user_layers + workspace_layers + [editor]:
            merge_into(base, base_sources, layer)
        data, sources = base, base_sources
    merge_into(data, sources, env)
    data["extends"] = data.get("extends", preset_name)
    sources.setdefault(("extends",), DEFAULT_SOURCE)

    config, more = validate(data, sources)
    problems += more
    if any(p.severity == "error" for p in problems):
        config = None
    return LoadResult(config, data, sources, problems, files, trusted)


def load_best(inputs: ConfigInputs) -> tuple[LoadResult, LoadResult]:
    """Load; if some files are broken, load again without them.

    Returns (first attempt, usable result). The first attempt carries every problem
    for diagnostics; the second is the config a server can run on.
    """
    first = load_config(inputs)
    if first.config is not None:
        return first, first
    broken = frozenset(p.file for p in first.errors if p.file and p.source and p.source.kind in ("user", "workspace"))
    if not broken:
        return first, first
    second = load_config(attrs.evolve(inputs, exclude=inputs.exclude | broken))
    return first, second


def unstructure(config: Config) -> dict[str, Any]:
    """Config -> plain dict shaped like the TOML (None values dropped)."""

    def clean(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items() if v is not None}
        if isinstance(value, list):
            return [clean(v) for v in value]
        return value

    result: dict[str, Any] = clean(converter.unstructure(config))
    return result


__all__ = ["ConfigInputs", "LoadResult", "load_best", "load_config", "get_in", "unstructure"]
