"""Pulling `hf:owner/repo/file.gguf` into the model cache.

`pull` goes through huggingface_hub's own pieces (file metadata from the resolve endpoint,
then `http_get`, which shows a progress bar and retries a cut connection with a Range
request). tinyarms keeps the partial file itself (`FILE.<etag>.incomplete` beside the
target), so a pull that was killed continues where it stopped. The finished file is checked
against the hub's size and checksum (the LFS sha256 in X-Linked-Etag/ETag, or the git blob
sha1 for small files) before it is moved into place, so `sources.resolve` never sees a bad file.
Plain HTTP only (the hub redirects Xet-backed files to a CDN URL that serves ranges too):
Xet is not used, so resuming and checking work the same for every file.
"""

from __future__ import annotations

import hashlib
import logging
import re
from pathlib import Path

from attrs import define

from tinyarms.models import sources

log = logging.getLogger(__name__)

PARTIAL = ".incomplete"
CHUNK_SIZE = 1 << 20
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_HEX40 = re.compile(r"^[0-9a-f]{40}$")


class PullError(Exception):
    """A pull failed; the message says why and what to do. A usable partial file is kept."""


@define
class Pulled:
    spec: str
    path: Path
    size: int
    checksum: str  # "sha256:..." or "git-sha1:..."
    downloaded: int  # bytes fetched by this call (0: it was already there)
    resumed_from: int  # bytes a previous, interrupted pull had left


def file_digests(path: Path) -> tuple[str, str]:
    """sha256 of the file, and its git blob sha1 (what the hub's ETag is for non-LFS files)."""
    sha256 = hashlib.sha256()
    git_sha1 = hashlib.sha1(f"blob {path.stat().st_size}\0".encode())
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            sha256.update(chunk)
            git_sha1.update(chunk)
    return sha256.hexdigest(), git_sha1.hexdigest()


def check(path: Path, etag: str | None, size: int | None) -> str:
    """The checksum that matched; raises PullError when size or checksum is wrong."""
    actual_size = path.stat().st_size
    if size is not None and actual_size != size:
        raise PullError(f"size mismatch: got {actual_size} bytes, the hub says {size}")
    sha256, git_sha1 = file_digests(path)
    tag = (etag or "").lower()
    if _HEX64.match(tag):
        if sha256 != tag:
            raise PullError(f"sha256 mismatch: got {sha256}, the hub says {tag}")
        return f"sha256:{sha256}"
    if _HEX40.match(tag):
        if git_sha1 != tag:
            raise PullError(f"checksum mismatch: git blob sha1 {git_sha1}, the hub says {tag}")
        return f"git-sha1:{git_sha1}"
    log.warning("the hub gave no checksum for %s (ETag %r): only the size was checked", path.name, etag)
    return f"sha256:{sha256}"


def pull(spec: str, *, revision: str = "main", force: bool = False) -> Pulled:
    """Download `hf:owner/repo/file` into the cache (resuming a partial file) and check it."""
    owner, repo, filename = sources.parse_hf(spec)
    target = sources.hf_cache_path(spec)
    from huggingface_hub import constants, get_hf_file_metadata, hf_hub_url
    from huggingface_hub.errors import EntryNotFoundError, HfHubHTTPError, OfflineModeIsEnabled
    from huggingface_hub.file_download import http_get
    from huggingface_hub.utils import build_hf_headers

    if constants.HF_HUB_OFFLINE:
        cached = f" ({target} is cached already and stays usable)" if target.is_file() else ""
        raise PullError(f"HF_HUB_OFFLINE is set, and pulling a model needs the network: unset it to pull{cached}")
    # http_get writes (and so can resume from) whole chunks only: 1 MiB instead of its 10 MiB
    # means an interrupted pull loses at most 1 MiB.
    constants.DOWNLOAD_CHUNK_SIZE = min(constants.DOWNLOAD_CHUNK_SIZE, CHUNK_SIZE)
    url = hf_hub_url(f"{owner}/{repo}", filename, revision=revision)
    try:
        meta = get_hf_file_metadata(url, retry_on_errors=True)
    except EntryNotFoundError as exc:
        raise PullError(f"{spec}: no such file in {owner}/{repo} at {revision}") from exc
    except (HfHubHTTPError, OfflineModeIsEnabled, OSError) as exc:
        raise PullError(f"{spec}: cannot reach {constants.ENDPOINT}: {_first_line(exc)}") from exc
    etag, size = meta.etag, meta.size
    if not etag:
        raise PullError(f"{spec}: the hub's answer has no ETag, so the download could not be checked")

    if target.is_file() and not force:
        try:
            checksum = check(target, etag, size)
            log.info("%s is already in the cache: %s", spec, target)
            return Pulled(spec, target, target.stat().st_size, checksum, downloaded=0, resumed_from=0)
        except PullError as exc:
            log.warning("%s: the cached file is stale or damaged (%s); downloading again", spec, exc)

    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f"{target.name}.{etag[:16]}{PARTIAL}")
    for stale in target.parent.glob(f"{target.name}.*{PARTIAL}"):
        if stale != partial:  # left by a pull of an older version of the file
            stale.unlink(missing_ok=True)
    resumed_from = partial.stat().st_size if partial.is_file() else 0
    if size is not None and resumed_from > size:
        partial.unlink()
        resumed_from = 0
    if resumed_from:
        log.info("resuming %s at %d of %s bytes", spec, resumed_from, size if size is not None else "?")
    try:
        with partial.open("r+b" if resumed_from else "wb") as f:
            f.seek(resumed_from)
            http_get(
                meta.location,
                f,
                resume_size=resumed_from,
                headers=build_hf_headers(),
                expected_size=size,
                displayed_filename=filename,
            )
    except Exception as exc:  # HTTP errors, and transport errors after http_get's own retries
        kept = partial.stat().st_size if partial.is_file() else 0
        raise PullError(
            f"{spec}: download interrupted ({type(exc).__name__}: {_first_line(exc)}); {kept} bytes are kept"
            f" in {partial}, run `tinyarms models pull {spec}` again to continue"
        ) from exc
    try:
        checksum = check(partial, etag, size)
    except PullError as exc:
        # A complete file with the wrong content cannot be resumed into a good one.
        partial.unlink(missing_ok=True)
        raise PullError(f"{spec}: the download failed its check ({exc}); the bad file was removed") from exc
    partial.replace(target)  # atomic: resolve() never sees a half-written or unchecked file
    final_size = target.stat().st_size
    return Pulled(spec, target, final_size, checksum, downloaded=final_size - resumed_from, resumed_from=resumed_from)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
