"""Check a merged config dict and turn it into typed `Config`.

Problems name the key and the source (file and line) that set it, with a
"did you mean" for unknown keys; nothing here raises on bad input.
"""

from __future__ import annotations

import copy
import difflib
import functools
import math
import re
import types
import typing
from typing import Any, Union, get_args, get_origin

import attrs
import cattrs
from cattrs.errors import ClassValidationError, ForbiddenExtraKeysError

from tinyarms.backends.registry import PROVIDERS, provider
from tinyarms.config.layers import DEFAULT_SOURCE, Problem, Source, del_in
from tinyarms.config.locate import KeyPath
from tinyarms.config.schema import ACTION_KINDS, MAX_REPLICAS, Config

_TYPE_NAMES = {str: "a string", int: "an integer", float: "a number", bool: "true or false"}


def _strict(kind: type) -> Any:
    """cattrs would turn 5 into "5" for a str field; a config typo deserves an error."""

    def hook(value: Any, _: Any) -> Any:
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise TypeError(f"expected {_TYPE_NAMES[kind]}, got {_describe(value)}")
        return value

    return hook


def _describe(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "a list"
    return f"{type(value).__name__} {value!r}"


converter = cattrs.Converter(forbid_extra_keys=True)
for _kind in _TYPE_NAMES:
    converter.register_structure_hook(_kind, _strict(_kind))


def _string_list(value: Any, _: Any) -> list[str]:
    # cattrs would turn "abc" into ["a", "b", "c"]; a list of strings must be a TOML array.
    if not isinstance(value, list):
        raise TypeError(f"expected a list of strings, got {_describe(value)}")
    return [_strict(str)(item, str) for item in value]


converter.register_structure_hook_func(lambda tp: tp == list[str], _string_list)


def dotted(path: KeyPath) -> str:
    return ".".join(path)


def _unwrap(tp: Any) -> Any:
    """Optional[X] -> X."""
    if get_origin(tp) in (Union, types.UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return tp


@functools.cache
def _resolve(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)  # once per class: it compiles every annotation (1 ms a call)


def unknown_keys(data: Any, cls: type, path: KeyPath = ()) -> list[tuple[KeyPath, str | None]]:
    """Keys in `data` that `cls` does not define, each with a close match if there is one."""
    if not isinstance(data, dict) or not attrs.has(cls):
        return []
    hints = _resolve(cls)
    found: list[tuple[KeyPath, str | None]] = []
    for key, value in data.items():
        if key not in hints:
            close = difflib.get_close_matches(key, list(hints), n=1, cutoff=0.6)
            found.append((path + (key,), close[0] if close else None))
            continue
        tp = _unwrap(hints[key])
        if attrs.has(tp):
            found += unknown_keys(value, tp, path + (key,))
        elif get_origin(tp) is dict and isinstance(value, dict):
            item_type = _unwrap(get_args(tp)[1])
            for name, item in value.items():
                found += unknown_keys(item, item_type, path + (key, name))
    return found


_PATH_TOKEN = re.compile(r"\.([A-Za-z0-9_]+)|\['([^']*)'\]|\[(\d+)\]")


def _parse_cattrs_path(text: str) -> KeyPath:
    return tuple(a or b or c for a, b, c in _PATH_TOKEN.findall(text))


def _format(exc: BaseException, _type: Any) -> str:
    if isinstance(exc, KeyError):
        return "required key missing"
    if isinstance(exc, ForbiddenExtraKeysError):
        return f"unknown keys: {', '.join(sorted(exc.extra_fields))}"
    return str(exc) or type(exc).__name__


def source_of(sources: dict[KeyPath, Source], path: KeyPath) -> Source:
    for i in range(len(path), 0, -1):
        if path[:i] in sources:
            return sources[path[:i]]
    return DEFAULT_SOURCE


def validate(data: dict[str, Any], sources: dict[KeyPath, Source]) -> tuple[Config | None, list[Problem]]:
    """Type-check the merged dict. Returns the config, or None and the problems."""
    problems: list[Problem] = []

    def problem(path: KeyPath, message: str) -> None:
        problems.append(Problem(message, source=source_of(sources, path), key=dotted(path)))

    data = copy.deepcopy(data)
    for path, suggestion in unknown_keys(data, Config):
        hint = f"; did you mean '{suggestion}'?" if suggestion else ""
        where = f" in [{dotted(path[:-1])}]" if len(path) > 1 else ""
        problem(path, f"unknown key '{path[-1]}'{where}{hint}")
        del_in(data, path)  # keep checking the rest

    tiers: dict[str, Any] = data["tiers"] if isinstance(data.get("tiers"), dict) else {}
    for name, tier in tiers.items():
        provider = tier.get("provider") if isinstance(tier, dict) else None
        if provider is not None and provider not in PROVIDERS:
            problem(
                ("tiers", name, "provider"),
                f"unknown provider {provider!r} for tier '{name}'; expected one of {', '.join(PROVIDERS)}",
            )
            del tier["provider"]
        if isinstance(tier, dict) and "base_urls" in tier:
            _check_replicas(name, tier, problem)
    roles: dict[str, Any] = data["roles"] if isinstance(data.get("roles"), dict) else {}
    for role_name, role in roles.items():
        if not isinstance(role, dict):
            continue
        share = role.get("strong_share")
        if isinstance(share, int | float) and not isinstance(share, bool) and not 0.0 <= share < 1.0:
            problem(("roles", role_name, "strong_share"), f"strong_share must be in [0, 1), got {share}")
        for key in ("tier", "escalate_to", "strong_tier"):
            names = role.get(key)
            for tier_name in [names] if isinstance(names, str) else names if isinstance(names, list) else []:
                if isinstance(tier_name, str) and tier_name not in tiers:
                    close = difflib.get_close_matches(tier_name, list(tiers), n=1)
                    hint = f"; did you mean '{close[0]}'?" if close else ""
                    problem(
                        ("roles", role_name, key),
                        f"role '{role_name}' refers to unknown tier '{tier_name}'{hint} "
                        f"(defined tiers: {', '.join(sorted(tiers)) or 'none'})",
                    )
    _check_routes(data, tiers, problem)
    _migrate_multiline(roles, sources, problems)

    try:
        config = converter.structure(data, Config)
    except ClassValidationError as exc:
        for line in cattrs.transform_error(exc, path="$", format_exception=_format):
            message, _, where = line.rpartition(" @ ")
            path = _parse_cattrs_path(where)
            problem(path, f"{dotted(path)}: {message}")
        return None, problems
    for path, message in out_of_range(config):
        problem(path, f"{dotted(path)}: {message}")
    _check_remote_wait(config, sources, problems)
    errors = [p for p in problems if p.severity == "error"]
    return (None, problems) if errors else (config, problems)


def _check_replicas(name: str, tier: dict[str, Any], problem: Any) -> None:
    """`base_urls`: one to MAX_REPLICAS distinct http(s) URLs, and not beside `base_url`."""
    urls = tier["base_urls"]
    path = ("tiers", name, "base_urls")
    if "base_url" in tier:
        problem(path, f"tier '{name}' sets both base_url and base_urls; keep one (base_urls for several replicas)")
        return
    if not isinstance(urls, list):
        return  # the type check below says what it should be
    if not 1 <= len(urls) <= MAX_REPLICAS:
        problem(path, f"tier '{name}': base_urls needs 1 to {MAX_REPLICAS} URLs, got {len(urls)}")
    for url in urls:
        if isinstance(url, str) and not url.startswith(("http://", "https://")):
            problem(path, f"tier '{name}': base_urls entry {url!r} is not an http(s) URL")
    repeated = sorted({u for u in urls if isinstance(u, str) and urls.count(u) > 1})
    if repeated:
        problem(path, f"tier '{name}': base_urls lists {repeated[0]!r} more than once")


def _check_remote_wait(config: Config, sources: dict[KeyPath, Source], problems: list[Problem]) -> None:
    """A remote autocomplete tier waited on for the whole budget leaves the local fallback no
    time: every slow answer is then empty. Valid, so a warning, at the key to change."""
    role = config.roles.autocomplete
    tier = config.tiers.get(role.tier)
    if tier is None or provider(tier.provider).runs_gguf or role.remote_wait_ms < role.max_latency_ms:
        return
    path = ("roles", "autocomplete", "remote_wait_ms")
    problems.append(
        Problem(
            f"roles.autocomplete.remote_wait_ms = {role.remote_wait_ms} is not below max_latency_ms = "
            f"{role.max_latency_ms}: when tier '{role.tier}' is slow, the local fallback has no time left "
            f"and the keystroke gets nothing; wait at most about 60% of the budget",
            severity="warning",
            source=source_of(sources, path),
            key=dotted(path),
        )
    )


def _migrate_multiline(roles: dict[str, Any], sources: dict[KeyPath, Source], problems: list[Problem]) -> None:
    """`roles.autocomplete.multiline` was a bool: true meant blocks where they make sense
    (now "auto"), false one line ("never"). Read the old form, and say how to write it."""
    role = roles.get("autocomplete")
    value = role.get("multiline") if isinstance(role, dict) else None
    if isinstance(role, dict) and isinstance(value, bool):
        new = "auto" if value else "never"
        role["multiline"] = new
        path = ("roles", "autocomplete", "multiline")
        problems.append(
            Problem(
                f'roles.autocomplete.multiline = {str(value).lower()} is the old form, read as "{new}"; '
                f'write "auto", "always" or "never"',
                severity="warning",
                source=source_of(sources, path),
                key=dotted(path),
            )
        )


def out_of_range(config: Any) -> list[tuple[KeyPath, str]]:
    """Numbers outside their field's `bounds` (schema.py), and any NaN or infinity."""
    found: list[tuple[KeyPath, str]] = []
    stack: list[tuple[Any, KeyPath]] = [(config, ())]
    while stack:
        node, path = stack.pop()
        if isinstance(node, dict):
            stack.extend((value, path + (str(key),)) for key, value in node.items())
            continue
        if not attrs.has(type(node)):
            continue
        for field in attrs.fields(type(node)):
            value, here = getattr(node, field.name), path + (field.name,)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                if (why := _range_problem(value, field.metadata.get("bounds") or {})) is not None:
                    found.append((here, why))
            elif isinstance(value, dict) or attrs.has(type(value)):
                stack.append((value, here))
    return sorted(found)


def _range_problem(value: float, limits: dict[str, float]) -> str | None:
    if not math.isfinite(value):
        return f"{value} is not a finite number"
    if "ge" in limits and value < limits["ge"]:
        return f"{value} is below the minimum {limits['ge']:g}"
    if "gt" in limits and value <= limits["gt"]:
        return f"{value} must be more than {limits['gt']:g}"
    if "le" in limits and value > limits["le"]:
        return f"{value} is above the maximum {limits['le']:g}"
    return None


def _check_routes(data: dict[str, Any], tiers: dict[str, Any], problem: Any) -> None:
    """Routes and the router name roles and tiers that must exist (issue 4)."""
    roles = ("chat", "edit", "agent")
    router = data.get("router")
    fallback = router.get("fallback_role") if isinstance(router, dict) else None
    if isinstance(fallback, str) and fallback not in roles:
        problem(("router", "fallback_role"), f"unknown role '{fallback}'; expected one of {', '.join(roles)}")
    routes = data.get("routes")
    for name, route in (routes if isinstance(routes, dict) else {}).items():
        if not isinstance(route, dict):
            continue
        role, tier = route.get("role"), route.get("tier")
        if isinstance(role, str) and role not in roles:
            expected = ", ".join(roles)
            problem(("routes", name, "role"), f"route '{name}' names unknown role '{role}'; expected one of {expected}")
        if isinstance(tier, str) and tier not in tiers:
            close = difflib.get_close_matches(tier, list(tiers), n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            problem(("routes", name, "tier"), f"route '{name}' refers to unknown tier '{tier}'{hint}")
        kind = route.get("action_kind")
        if isinstance(kind, str) and kind not in ACTION_KINDS:
            expected = ", ".join(repr(k) for k in ACTION_KINDS)
            message = f"route '{name}' has unknown action_kind '{kind}'; expected {expected}"
            problem(("routes", name, "action_kind"), message)
