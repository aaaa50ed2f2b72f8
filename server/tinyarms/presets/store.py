"""Installed presets: `NAME.toml` plus `NAME.json` (origin, sha256, when) in the platformdirs
user data dir (`~/.local/share/tinyarms/presets/` on Linux).

The config loader finds them by name (`config/layers.py: find_preset`), an installed
preset before a shipped one. Every write goes to a temporary file first and is renamed
into place, so a failed install or update leaves the previous preset as it was.
"""

from __future__ import annotations

import difflib
import json
import tempfile
import time
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from attrs import define

from tinyarms import __version__
from tinyarms.atomic import write_bytes
from tinyarms.config.layers import PRESET_NAME, find_preset, installed_presets_dir, leaves, presets_dir
from tinyarms.presets.fetch import is_url, read_source, sha256
from tinyarms.presets.verify import PresetError, check


class PresetChanged(PresetError):
    """`update` found different content at the origin and was not told to accept it."""


@define
class PresetEntry:
    name: str
    origin: str  # "shipped" or where it was installed from
    version: str
    description: str
    path: Path
    installed: bool
    sha256: str = ""
    shadows_shipped: bool = False  # an installed preset with a shipped preset's name

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "origin": self.origin,
            "version": self.version,
            "description": self.description,
            "path": str(self.path),
            "installed": self.installed,
            "sha256": self.sha256 or None,
            "shadows_shipped": self.shadows_shipped,
        }


def _info(text: str) -> tuple[str, str]:
    """(version, description) from a preset's [preset] table, else its first comment line."""
    try:
        info = tomllib.loads(text).get("preset") or {}
    except tomllib.TOMLDecodeError:
        info = {}
    description = str(info.get("description") or "")
    if not description:
        first = next((line for line in text.splitlines() if line.strip()), "")
        description = first.lstrip("#").strip() if first.startswith("#") else ""
    return str(info.get("version") or ""), description


def _meta(name: str) -> dict[str, Any]:
    try:
        data = json.loads((installed_presets_dir() / f"{name}.json").read_text(encoding="utf-8"))
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def entries() -> list[PresetEntry]:
    """Every preset, shipped and installed, by name; an installed one shadows a shipped one."""
    shipped = {p.stem: p for p in presets_dir().glob("*.toml")}
    installed = {p.stem: p for p in installed_presets_dir().glob("*.toml") if PRESET_NAME.match(p.stem)}
    out: list[PresetEntry] = []
    for name in sorted(shipped.keys() | installed.keys()):
        if name in installed:
            meta = _meta(name)
            text = installed[name].read_text(encoding="utf-8", errors="replace")
            version, description = _info(text)
            out.append(
                PresetEntry(
                    name,
                    str(meta.get("origin", "?")),
                    version or str(meta.get("sha256", ""))[:12],
                    description,
                    installed[name],
                    True,
                    str(meta.get("sha256", "")),
                    name in shipped,
                )  # fmt: skip
            )
        else:
            version, description = _info(shipped[name].read_text(encoding="utf-8"))
            out.append(
                PresetEntry(name, "shipped", version or f"tinyarms {__version__}", description, shipped[name], False)
            )
    return out


def get(name: str) -> PresetEntry:
    for entry in entries():
        if entry.name == name:
            return entry
    known = ", ".join(e.name for e in entries())
    raise PresetError(f"no preset '{name}' (presets: {known})")


def _name_from(source: str) -> str:
    stem = Path(urlparse(source).path if is_url(source) else source).stem.lower()
    if stem.endswith(".tinyarms"):
        stem = stem[: -len(".tinyarms")]
    return stem


def _save(name: str, data: bytes, origin: str, digest: str) -> Path:
    folder = installed_presets_dir()
    version, description = _info(data.decode("utf-8"))
    meta = {"name": name, "origin": origin, "sha256": digest, "installed_at": round(time.time()), "version": version}
    meta["description"] = description
    write_bytes(folder / f"{name}.toml", data)
    write_bytes(folder / f"{name}.json", (json.dumps(meta, indent=2) + "\n").encode())
    return folder / f"{name}.toml"


def _decode(source: str, data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PresetError(f"{source}: not UTF-8 text") from exc


def _origin(source: str) -> str:
    return source if is_url(source) else str(Path(source).expanduser().resolve())


@define
class Installed:
    name: str
    path: Path
    sha256: str
    origin: str
    shadows_shipped: bool
    changed: bool = True  # update: False when the origin had the same content


def install(source: str, *, name: str | None = None, expect_sha256: str | None = None) -> Installed:
    """Fetch, pin, validate and install a preset. Raises PresetError; nothing is written then."""
    data = read_source(source)
    digest = sha256(data)
    if expect_sha256 and digest != expect_sha256.strip().lower():
        raise PresetError(f"{source}: sha256 is {digest}, expected {expect_sha256}; nothing installed")
    name = name or _name_from(source)
    if (installed_presets_dir() / f"{name}.toml").is_file():
        raise PresetError(
            f"'{name}' is already installed (from {_meta(name).get('origin', '?')}); "
            f"`tinyarms presets update {name}` fetches it again, or remove it first"
        )
    check(name, _decode(source, data), origin=source)
    path = _save(name, data, _origin(source), digest)
    return Installed(name, path, digest, _origin(source), (presets_dir() / f"{name}.toml").is_file())


def update(name: str, *, confirm: bool = False, expect_sha256: str | None = None) -> Installed:
    """Fetch an installed preset again from where it came from.

    Different content is refused unless `confirm` (the user saw the new hash) or the new
    hash is `expect_sha256`: an origin that changes under the user must not change where
    their code goes without them knowing."""
    meta = _meta(name)
    if not (installed_presets_dir() / f"{name}.toml").is_file() or not meta.get("origin"):
        raise PresetError(f"'{name}' is not an installed preset (shipped presets update with tinyarms)")
    origin = str(meta["origin"])
    data = read_source(origin)
    digest = sha256(data)
    path = installed_presets_dir() / f"{name}.toml"
    shadows = (presets_dir() / f"{name}.toml").is_file()
    if digest == meta.get("sha256"):
        return Installed(name, path, digest, origin, shadows, changed=False)
    if expect_sha256 and digest != expect_sha256.strip().lower():
        raise PresetError(f"{origin}: sha256 is now {digest}, expected {expect_sha256}; nothing changed")
    text = _decode(origin, data)
    check(name, text, origin=origin)  # before showing it: a new version that carries a key is not echoed
    if not confirm and not expect_sha256:
        old = path.read_text(encoding="utf-8", errors="replace").splitlines()
        changes = list(difflib.unified_diff(old, text.splitlines(), "installed", "at the origin", lineterm="", n=1))
        shown = "\n".join(changes[:60]) + ("\n..." if len(changes) > 60 else "")
        raise PresetChanged(
            f"{origin} changed: sha256 was {meta.get('sha256')}, is now {digest}; nothing changed.\n{shown}\n"
            f"To take it: `tinyarms presets update {name} --sha256 {digest}` (or --yes)"
        )
    _save(name, data, origin, digest)
    return Installed(name, path, digest, origin, shadows)


def remove(name: str) -> Path:
    path = installed_presets_dir() / f"{name}.toml"
    if not PRESET_NAME.match(name) or not path.is_file():
        shipped = find_preset(name)
        why = "it is shipped with tinyarms and cannot be removed" if shipped else "it is not installed"
        raise PresetError(f"'{name}': {why}")
    path.unlink()
    (installed_presets_dir() / f"{name}.json").unlink(missing_ok=True)
    return path


def diff(name: str, against: str = "default") -> list[str]:
    """What choosing preset `name` changes against preset `against`, one key a line."""
    from tinyarms.config import ConfigInputs, load_config
    from tinyarms.config.explain import effective

    get(name)  # a clear error for an unknown name
    trees = []
    with tempfile.TemporaryDirectory() as tmp:
        for preset in (against, name):
            user = Path(tmp) / f"{preset}.toml"
            user.write_text(f"extends = {json.dumps(preset)}\n", encoding="utf-8")
            result = load_config(ConfigInputs(user_file=user, env={}))
            if result.config is None:
                raise PresetError(f"preset '{preset}' does not load: " + "; ".join(map(str, result.errors)))
            tree = effective(result)
            tree.pop("extends", None)
            trees.append(dict(leaves(tree)))
    old, new = trees
    lines: list[str] = []
    for path in sorted(old.keys() | new.keys()):
        key = ".".join(path)
        if path not in old:
            lines.append(f"+ {key} = {_short(new[path])}")
        elif path not in new:
            lines.append(f"- {key} (was {_short(old[path])})")
        elif old[path] != new[path]:
            lines.append(f"~ {key}: {_short(old[path])} -> {_short(new[path])}")
    return lines


def _short(value: Any) -> str:
    if isinstance(value, list) and len(value) > 4:
        return f"[{len(value)} items]"
    return json.dumps(value)
