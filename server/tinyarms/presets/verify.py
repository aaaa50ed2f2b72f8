"""Checks a preset must pass before it is installed.

A preset is shared text from someone else, so three things are refused:
- anything that looks like a secret in it (an API key pasted into a value, or a known key
  format anywhere, comments included): a shared file must name the variable that holds a
  key (`api_key_env`), never the key;
- `extends` that is not a preset name (a path or a URL inside a preset would reach files or
  hosts the user never chose);
- a config that does not validate on top of the preset it extends (unknown keys, wrong
  types, roles naming unknown tiers), reported as `NAME:LINE: message`.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tinyarms.config.layers import PRESET_NAME, Layer, Problem, leaves, merge_into, read_file_layer
from tinyarms.config.loader import load_preset_chain
from tinyarms.config.locate import KeyPath
from tinyarms.config.validate import validate


class PresetError(Exception):
    """A preset that cannot be installed; the message says why, one problem a line."""


# Key formats with a recognisable prefix: refused anywhere in the text.
KNOWN_KEYS = re.compile(
    r"""(sk-ant-[A-Za-z0-9_-]{16,}|sk-(?:proj-|or-v1-)?[A-Za-z0-9_-]{20,}|AKIA[0-9A-Z]{16}|gh[pousr]_[A-Za-z0-9]{30,}
    |github_pat_[A-Za-z0-9_]{30,}|hf_[A-Za-z0-9]{30,}|xox[abprs]-[A-Za-z0-9-]{10,}|AIza[0-9A-Za-z_-]{35}
    |glpat-[A-Za-z0-9_-]{20,}|eyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]+)""",
    re.VERBOSE,
)
# A long unbroken run of letters and digits in both cases: how most other keys look.
GENERIC_TOKEN = re.compile(r"[A-Za-z0-9_+/=-]{32,}")
CREDENTIAL_URL = re.compile(r"^[a-z][a-z0-9+.-]*://[^/@\s]+:[^/@\s]+@", re.IGNORECASE)
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _looks_like_key(text: str) -> bool:
    for token in GENERIC_TOKEN.findall(text):
        if any(c.isdigit() for c in token) and any(c.islower() for c in token) and any(c.isupper() for c in token):
            return True
    return False


def secrets_in(text: str, data: dict[str, Any]) -> Iterator[str]:
    """What looks like a secret in a preset, as messages (never the secret itself)."""
    for number, line in enumerate(text.splitlines(), start=1):
        if KNOWN_KEYS.search(line):
            yield f"line {number}: this looks like an API key; name the variable that holds it (api_key_env)"
    for path, value in leaves(data):
        where = ".".join(path)
        values = value if isinstance(value, list) else [value]
        for item in values:
            if not isinstance(item, str):
                continue
            if path[-1] == "api_key_env" and item and not ENV_NAME.match(item):
                yield f"{where}: must be the name of an environment variable, not a key"
            elif CREDENTIAL_URL.match(item):
                yield f"{where}: a URL with a user and password in it"
            elif _looks_like_key(item) and not KNOWN_KEYS.search(item):
                yield f"{where}: this value looks like an API key or token; a preset must not carry secrets"


def check(name: str, text: str, *, origin: str = "") -> dict[str, Any]:
    """Validate preset `text` to be installed as `name`. Returns its TOML data; raises PresetError."""
    if not PRESET_NAME.match(name) or name.endswith(".toml"):
        raise PresetError(f"'{name}' is not a preset name (lowercase letters, digits, '.', '_' and '-')")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PresetError(f"{origin or name}: not valid TOML: {exc}") from exc
    problems = list(dict.fromkeys(secrets_in(text, data)))
    if problems:
        raise PresetError(f"{origin or name}: refused, it may carry a secret:\n  " + "\n  ".join(problems))
    extends = data.get("extends")
    if extends is not None:
        if not isinstance(extends, str) or not PRESET_NAME.match(extends) or extends.endswith(".toml"):
            raise PresetError(
                f"{origin or name}: extends = {extends!r}: a preset extends another preset by name only "
                "(no paths, no URLs)"
            )
        if extends == name:
            raise PresetError(f"{origin or name}: a preset cannot extend its own name '{name}'")
    layer = read_file_layer(Path(f"{name}.toml"), "preset", text=text, name=name)
    errors = [str(p) for p in _validate(layer, extends) if p.severity == "error"]
    if errors:
        raise PresetError(f"{origin or name}: not a valid preset:\n  " + "\n  ".join(errors))
    return data


def _validate(layer: Layer, extends: str | None) -> list[Problem]:
    layer.data.pop("extends", None)
    chain, problems = load_preset_chain(extends) if extends else ([], [])
    data: dict[str, Any] = {}
    sources: dict[KeyPath, Any] = {}
    for below in [*chain, layer]:
        merge_into(data, sources, below)
    _, more = validate(data, sources)
    return problems + more
