"""Read a preset's bytes from a file or an http(s) URL.

httpx with `trust_env` (the default), so HTTP(S)_PROXY, NO_PROXY and SSL_CERT_FILE from the
environment apply. A preset is a small text file: more than 1 MiB is refused, and the
whole download has a 30 s timeout.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import httpx

from tinyarms.presets.verify import PresetError

MAX_BYTES = 1 << 20
TIMEOUT_S = 30.0


def is_url(source: str) -> bool:
    return source.startswith(("http://", "https://"))


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def read_source(source: str) -> bytes:
    """The bytes at `source` (a path or an http(s) URL). Raises PresetError with the reason."""
    if "://" in source and not is_url(source):
        raise PresetError(f"{source}: only http:// and https:// URLs (or a file path) can be installed")
    if not is_url(source):
        path = Path(source).expanduser()
        try:
            if path.stat().st_size > MAX_BYTES:
                raise PresetError(f"{path}: larger than {MAX_BYTES} bytes; a preset is a small TOML file")
            return path.read_bytes()
        except OSError as exc:
            raise PresetError(f"{path}: {exc.strerror or exc}") from exc
    try:
        headers = {"Accept": "application/toml, text/plain, */*"}
        with (
            httpx.Client(timeout=TIMEOUT_S, follow_redirects=True, trust_env=True) as client,
            client.stream("GET", source, headers=headers) as response,
        ):
            if response.status_code != 200:
                raise PresetError(f"{source}: HTTP {response.status_code}")
            chunks: list[bytes] = []
            size = 0
            for chunk in response.iter_bytes():
                size += len(chunk)
                if size > MAX_BYTES:
                    raise PresetError(f"{source}: larger than {MAX_BYTES} bytes; a preset is a small TOML file")
                chunks.append(chunk)
            return b"".join(chunks)
    except httpx.HTTPError as exc:
        raise PresetError(f"{source}: {type(exc).__name__}: {exc}") from exc
