"""Layered config loading with provenance.

Lowest to highest:  preset (the `extends` chain) < user file < workspace file
< editor settings < environment (TINYARMS_*).

Every layer is read into a plain dict plus a map from key path to `Source`.
Layers are merged key by key, so a layer may set one key of one role and
nothing else; the merged dict is then validated and typed (see `validate.py`).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import tomllib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Literal

import attrs
import platformdirs
from attrs import define, field

from tinyarms.config.locate import KeyPath, key_lines, line_of

SourceKind = Literal["default", "preset", "user", "workspace", "editor", "env"]
WORKSPACE_FILE = ".tinyarms.toml"
PYPROJECT = "pyproject.toml"
ENV_PREFIX = "TINYARMS_"


@define(frozen=True)
class Source:
    """Where one config value came from."""

    kind: SourceKind
    name: str = ""  # preset name or env var name
    path: Path | None = None
    line: int | None = None
    origin: str = ""  # an installed preset: "installed from URL, sha256 ..."

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line else str(self.path)
        if self.kind == "preset":
            return f"preset {self.name} ({self.origin}; {where})" if self.origin else f"preset {self.name} ({where})"
        if self.kind in ("user", "workspace"):
            return where
        if self.kind == "editor":
            return "editor settings"
        if self.kind == "env":
            return f"env {self.name}"
        return "built-in default"


DEFAULT_SOURCE = Source("default")


@define
class Problem:
    """A config error or warning, placed at a file and line when there is one."""

    message: str
    severity: Literal["error", "warning"] = "error"
    source: Source | None = None
    key: str | None = None

    @property
    def file(self) -> Path | None:
        return self.source.path if self.source else None

    @property
    def line(self) -> int | None:
        return self.source.line if self.source else None

    def __str__(self) -> str:
        if self.source is None:
            return self.message
        if self.source.path is None:
            return f"{self.source}: {self.message}"
        return f"{self.source.path}:{self.source.line or 1}: {self.message}"


@define
class Layer:
    kind: SourceKind
    data: dict[str, Any]
    sources: dict[KeyPath, Source]
    problems: list[Problem] = field(factory=list)
    path: Path | None = None
    name: str = ""


# -- finding files ---------------------------------------------------------------------


def presets_dir() -> Path:
    """The shipped presets: inside the wheel, or roles/ in a source checkout."""
    packaged = Path(__file__).resolve().parent.parent / "roles"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parents[3] / "roles"


def installed_presets_dir() -> Path:
    """Presets installed with `tinyarms presets install` (see tinyarms/presets/)."""
    return platformdirs.user_data_path("tinyarms") / "presets"


# A preset is named, never a path: `extends = "NAME"` cannot climb out of the presets folders.
PRESET_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")


@define(frozen=True)
class PresetFile:
    name: str
    path: Path
    installed: bool
    origin: str = ""  # installed: where it came from
    sha256: str = ""  # installed: the hash pinned at install

    def describe(self) -> str:
        return f"installed from {self.origin}, sha256 {self.sha256[:12]}…" if self.installed else ""


def find_preset(name: str) -> PresetFile | None:
    """An installed preset before a shipped one of the same name."""
    if not PRESET_NAME.match(name) or name.endswith(".toml"):
        return None
    installed = installed_presets_dir() / f"{name}.toml"
    if installed.is_file():
        meta: dict[str, Any] = {}
        with contextlib.suppress(OSError, ValueError):
            meta = json.loads(installed.with_suffix(".json").read_text(encoding="utf-8"))
        return PresetFile(name, installed, True, str(meta.get("origin", "?")), str(meta.get("sha256", "?")))
    shipped = presets_dir() / f"{name}.toml"
    return PresetFile(name, shipped, False) if shipped.is_file() else None


def preset_names() -> list[str]:
    """Shipped and installed preset names."""
    found = {p.stem for p in presets_dir().glob("*.toml")}
    found |= {p.stem for p in installed_presets_dir().glob("*.toml") if PRESET_NAME.match(p.stem)}
    return sorted(found)


def user_config_file() -> Path:
    return platformdirs.user_config_path("tinyarms") / "config.toml"


def workspace_config_file(workspace: Path) -> Path | None:
    """`.tinyarms.toml`, else a pyproject.toml with a [tool.tinyarms] table."""
    candidate = workspace / WORKSPACE_FILE
    if candidate.is_file():
        return candidate
    pyproject = workspace / PYPROJECT
    if pyproject.is_file():
        try:
            data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError, RecursionError, MemoryError):
            return None  # not ours to diagnose: tinyarms reads it only for [tool.tinyarms]
        tool = data.get("tool")
        if isinstance(tool, dict) and "tinyarms" in tool:
            return pyproject
    return None


def is_config_file(path: Path) -> bool:
    return path.name in (WORKSPACE_FILE, PYPROJECT) or path == user_config_file()


# -- reading one layer -----------------------------------------------------------------


def _toml_error_line(exc: tomllib.TOMLDecodeError) -> int | None:
    # Python 3.11's TOMLDecodeError has no lineno; the message ends "(at line N, column M)".
    match = re.search(r"at line (\d+)", str(exc))
    return int(match.group(1)) if match else None


# Tables and arrays nested deeper than this are refused: a tinyarms config is 4 levels
# deep at most, and deeper data (600 nested arrays) overflows Python's recursion in tomllib,
# copy and cattrs.
MAX_DEPTH = 24


def read_file_layer(path: Path, kind: SourceKind, *, text: str | None = None, name: str = "") -> Layer:
    """Read one TOML file. Any failure gives an empty layer with one problem at the file."""

    def broken(message: str, line: int | None = None) -> Layer:
        return Layer(kind, {}, {}, [Problem(message, source=Source(kind, name, path, line))], path)

    try:
        if text is None:
            text = path.read_text(encoding="utf-8")
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = re.sub(r"\s*\(at line \d+, column \d+\)", "", str(exc))
        return broken(f"TOML syntax error: {message}", _toml_error_line(exc))
    except (OSError, UnicodeDecodeError) as exc:
        return broken(f"cannot read: {exc}")
    except (RecursionError, MemoryError) as exc:
        return broken(f"cannot read: too large or too deeply nested ({type(exc).__name__})")

    prefix: KeyPath = ()
    if path.name == PYPROJECT and kind == "workspace":
        prefix = ("tool", "tinyarms")
        tool = data.get("tool")
        data = tool.get("tinyarms", {}) if isinstance(tool, dict) else {}
        if not isinstance(data, dict):
            return broken("[tool.tinyarms] must be a table")
    if _depth(data) > MAX_DEPTH:
        return broken(f"nested more than {MAX_DEPTH} levels deep; a tinyarms config needs at most 4")
    lines = key_lines(text)
    sources = {key: Source(kind, name, path, line_of(lines, prefix + key) or 1) for key in walk_keys(data)}
    return Layer(kind, data, sources, path=path, name=name)


def _depth(data: Any) -> int:
    """How deep tables and lists nest in `data` (iterative: the data may be deep)."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(data, 0)]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        if depth > MAX_DEPTH:
            break
        children = node.values() if isinstance(node, Mapping) else node if isinstance(node, list) else ()
        stack.extend((child, depth + 1) for child in children if isinstance(child, (Mapping, list)))
    return deepest


def dict_layer(data: Mapping[str, Any], kind: SourceKind, name: str = "") -> Layer:
    if _depth(data) > MAX_DEPTH:
        layer = Layer(kind, {}, {}, name=name)
        layer.problems.append(Problem(f"editor settings nested more than {MAX_DEPTH} levels deep; ignored"))
        return layer
    clean = _drop_nulls(data)
    return Layer(kind, clean, {key: Source(kind, name) for key in walk_keys(clean)}, name=name)


def _drop_nulls(data: Mapping[str, Any]) -> dict[str, Any]:
    """Editors send null for settings the user left unset; those mean "no opinion"."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, Mapping):
            value = _drop_nulls(value)
            if not value:
                continue
        if value is None or value == "":
            continue
        out[key] = value
    return out


def env_layer(env: Mapping[str, str], top_level_keys: set[str], known: dict[str, Any]) -> Layer:
    """TINYARMS_ROLES__CHAT__TIER=cloud-strong sets roles.chat.tier.

    `__` separates keys. A segment matches an existing key ignoring case and `-`
    versus `_`, so TINYARMS_TIERS__CLOUD_FAST__MODEL reaches tiers.cloud-fast.
    Values are read as TOML values when they parse (numbers, booleans, lists), else
    as plain strings.
    """
    layer = Layer("env", {}, {})
    for var, raw in sorted(env.items()):
        if not var.startswith(ENV_PREFIX):
            continue
        segments = var[len(ENV_PREFIX) :].split("__")
        if segments[0].lower() not in top_level_keys:
            continue  # not a config variable (e.g. TINYARMS_LOG_LEVEL)
        path: list[str] = []
        node: Any = known
        for segment in segments:
            wanted = segment.lower().replace("-", "_")
            match = next(
                (k for k in (node if isinstance(node, dict) else {}) if k.lower().replace("-", "_") == wanted),
                segment.lower(),
            )
            path.append(match)
            node = node.get(match, {}) if isinstance(node, dict) else {}
        try:
            value: Any = tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError:
            value = raw
        set_in(layer.data, tuple(path), value)
        source = Source("env", var)
        for i in range(1, len(path) + 1):
            layer.sources.setdefault(tuple(path[:i]), source)
    return layer


# -- dict helpers ----------------------------------------------------------------------


def walk_keys(data: Mapping[str, Any], prefix: KeyPath = ()) -> Iterator[KeyPath]:
    """Every key path in `data`, tables and leaves; lists are leaves."""
    for key, value in data.items():
        path = prefix + (key,)
        yield path
        if isinstance(value, Mapping):
            yield from walk_keys(value, path)


def leaves(data: Mapping[str, Any], prefix: KeyPath = ()) -> Iterator[tuple[KeyPath, Any]]:
    for key, value in data.items():
        path = prefix + (key,)
        if isinstance(value, Mapping) and value:
            yield from leaves(value, path)
        else:
            yield path, value


def get_in(data: Mapping[str, Any], path: KeyPath, default: Any = None) -> Any:
    node: Any = data
    for key in path:
        if not isinstance(node, Mapping) or key not in node:
            return default
        node = node[key]
    return node


def set_in(data: dict[str, Any], path: KeyPath, value: Any) -> None:
    node = data
    for key in path[:-1]:
        child = node.get(key)
        if not isinstance(child, dict):
            child = node[key] = {}
        node = child
    node[path[-1]] = value


def del_in(data: dict[str, Any], path: KeyPath) -> None:
    parent = get_in(data, path[:-1])
    if isinstance(parent, dict):
        parent.pop(path[-1], None)


# A tier's endpoint is `base_url` or `base_urls`: a layer that sets one replaces the other from
# the layers below (a user file lists replicas for a preset's single server); one file setting
# both is an error (validate.py).
_REPLACES = {"base_url": "base_urls", "base_urls": "base_url"}


def _drop_replaced(data: dict[str, Any], sources: dict[KeyPath, Source], layer: Layer) -> None:
    tiers = layer.data.get("tiers")
    for name, tier in tiers.items() if isinstance(tiers, Mapping) else ():
        if not isinstance(tier, Mapping):
            continue
        for key, other in _REPLACES.items():
            if key in tier and other not in tier:
                del_in(data, ("tiers", name, other))
                sources.pop(("tiers", name, other), None)


def merge_into(data: dict[str, Any], sources: dict[KeyPath, Source], layer: Layer) -> None:
    """Apply one layer on top of `data`, key by key, recording where each value came from."""
    _drop_replaced(data, sources, layer)
    for path in walk_keys(layer.data):
        sources.setdefault(path, layer.sources.get(path, Source(layer.kind, layer.name)))
    for path, value in leaves(layer.data):
        if isinstance(value, Mapping):  # an empty table: make sure it exists
            if not isinstance(get_in(data, path), dict):
                set_in(data, path, {})
            continue
        replaced_table = isinstance(get_in(data, path), Mapping)
        set_in(data, path, value)
        sources[path] = layer.sources.get(path, Source(layer.kind, layer.name))
        if replaced_table:  # its old children no longer apply (rare: scanning each time was quadratic)
            for stale in [p for p in sources if p[: len(path)] == path and len(p) > len(path)]:
                del sources[stale]


def copy_layer(layer: Layer) -> Layer:
    import copy

    return attrs.evolve(layer, data=copy.deepcopy(layer.data), sources=dict(layer.sources))


def environ() -> Mapping[str, str]:
    return os.environ
