"""The one-time encoder export, said in one line of tinyarms' own.

On a fresh install the first routed request exports MiniLM to ONNX (torch, then int8
quantisation: 30-90 s on a laptop). The libraries doing it talk: transformers draws a
"Loading weights" bar, onnxruntime's quantiser logs "Please consider to run
pre-processing before quantization" once per graph (four), torch's exporter warns. None
of that means anything to a user, so unless `-v` it all goes to /dev/null (file
descriptors 1 and 2 are redirected, which also silences C++ code and tqdm), and tinyarms
prints one line with its own elapsed-time progress instead.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from collections.abc import Iterator
from typing import TextIO

from tinyarms.router.encoder import Encoder, export_needed, load_encoder

MESSAGE = "preparing the router encoder, once: about a minute"


@contextlib.contextmanager
def _quiet() -> Iterator[TextIO]:
    """Send fds 1 and 2 to /dev/null; yield a stream on the real stderr for our own progress."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved_out, saved_err = os.dup(1), os.dup(2)
    ours = os.fdopen(os.dup(saved_err), "w", buffering=1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        yield ours
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved_out, 1)
        os.dup2(saved_err, 2)
        for fd in (saved_out, saved_err, devnull):
            os.close(fd)
        ours.close()


@contextlib.contextmanager
def _ticker(out: TextIO) -> Iterator[None]:
    """`MESSAGE ... 12 s` redrawn each second on a terminal; on a pipe, one line when done."""
    started = time.monotonic()
    done = threading.Event()
    tty = out.isatty()

    def tick() -> None:
        while not done.wait(1.0):
            out.write(f"\r{MESSAGE} ... {time.monotonic() - started:.0f} s")
            out.flush()

    thread = threading.Thread(target=tick, daemon=True) if tty else None
    out.write(MESSAGE + ("" if tty else "\n"))
    out.flush()
    if thread:
        thread.start()
    try:
        yield
    finally:
        done.set()
        if thread:
            thread.join()
        out.write(f"{chr(13) + MESSAGE + ' ...' if tty else ' '} done in {time.monotonic() - started:.0f} s\n")
        out.flush()


def prepare(model: str, backend: str, *, threads: int = 1, verbose: bool = False) -> Encoder | None:
    """Export the encoder if it is not yet in the cache; None when there was nothing to do."""
    if not export_needed(model, backend):
        return None
    if verbose:
        print(MESSAGE, file=sys.stderr)
        return load_encoder(model, backend, threads)
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    with _quiet() as ours, _ticker(ours):
        return load_encoder(model, backend, threads)
