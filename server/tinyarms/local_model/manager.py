"""One model child per (model, purpose, settings), shared by every feature of the server.

Autocomplete and the local chat tier ask for the same model with different purposes, so
a long chat answer never holds up a keystroke: each purpose has its own process.
"""

from __future__ import annotations

import asyncio
import atexit

from tinyarms.local_model.client import LocalModel

_models: dict[tuple[str, str, int | None, int | None], LocalModel] = {}


def get_model(spec: str, *, purpose: str, n_ctx: int | None = None, n_threads: int | None = None) -> LocalModel:
    """The shared LocalModel for `spec` and `purpose` (not started: call `await model.start()`)."""
    key = (spec, purpose, n_ctx, n_threads)
    model = _models.get(key)
    if model is not None and model.loop is not None and model.loop is not _running_loop():
        model.kill_now()  # bound to an event loop that is gone (tests, CLI runs)
        model = None
    if model is None or model.state == "stopped":
        model = LocalModel(spec, purpose=purpose, n_ctx=n_ctx, n_threads=n_threads)
        _models[key] = model
    return model


def all_models() -> list[LocalModel]:
    return list(_models.values())


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


@atexit.register
def _kill_children() -> None:
    for model in _models.values():
        model.kill_now()
