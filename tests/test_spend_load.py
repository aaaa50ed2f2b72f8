"""Spend under load: many editors' servers (real processes) answering through `run_role` at once
against one real loopback server, all writing the same SQLite ledger and trace. Every
request's cost is in the ledger exactly once, per editor and in total; and a write lock held
past the busy timeout is waited out, not mistaken for a broken file."""

from __future__ import annotations

import asyncio
import multiprocessing
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from faultserver import FaultServer
from tinyarms.backends import Usage
from tinyarms.tiers import costs, db, trace

EDITORS = 8
REQUESTS = 50
PRICE = {"input_per_mtok": 1000.0, "output_per_mtok": 3000.0}  # large enough that every request costs


@pytest.fixture(scope="module")
def server() -> Iterator[FaultServer]:
    with FaultServer() as fault_server:
        yield fault_server


def _editor(url: str, home: str, editor: int, start: multiprocessing.synchronize.Event, out: str) -> None:
    """One editor's server: REQUESTS chat requests on its own tier `editor-N`; writes what it was charged."""
    import os

    os.environ["XDG_STATE_HOME"] = f"{home}/state"
    os.environ["XDG_DATA_HOME"] = f"{home}/data"
    from tinyarms import tiers
    from tinyarms.config.validate import validate

    name = f"editor-{editor}"
    tier = {"provider": "openai", "base_url": url, "model": "ok", "price": PRICE, "max_retries": 0}
    config, problems = validate(
        {"tiers": {name: tier}, "roles": {"chat": {"tier": name}}, "cache": {"enabled": False}}, {}
    )
    assert config is not None, problems

    async def run() -> float:
        total = 0.0
        for i in range(REQUESTS):
            question = [{"role": "user", "content": f"editor {editor} question {i}: what does f return?"}]
            answer = await tiers.run_role(config, "chat", question)
            total += answer.cost_usd
        await tiers.aclose()
        return total

    start.wait(60)
    Path(out).write_text(repr(asyncio.run(run())))


def test_every_editors_spend_is_exact_with_many_processes_at_once(tmp_path: Path, server: FaultServer) -> None:
    context = multiprocessing.get_context("spawn")  # separate interpreters, like separate editors' servers
    start = context.Event()
    outs = [tmp_path / f"editor-{n}.total" for n in range(EDITORS)]
    editors = [
        context.Process(target=_editor, args=(server.url, str(tmp_path), n, start, str(outs[n])))
        for n in range(EDITORS)
    ]
    for editor in editors:
        editor.start()
    start.set()  # all at once, once every interpreter is up
    for editor in editors:
        editor.join(240)
        assert editor.exitcode == 0
    assert len(server.log) == EDITORS * REQUESTS  # the server's own count: every request was sent once

    ledger = tmp_path / "data" / "tinyarms" / "spend.sqlite"
    with sqlite3.connect(ledger) as conn:
        rows = dict(conn.execute("SELECT tier, COUNT(*) FROM spend GROUP BY tier").fetchall())
        by_tier = dict(conn.execute("SELECT tier, SUM(usd) FROM spend GROUP BY tier").fetchall())
    assert rows == {f"editor-{n}": REQUESTS for n in range(EDITORS)}  # one row per request, none lost or doubled
    for n, out in enumerate(outs):
        assert by_tier[f"editor-{n}"] == pytest.approx(float(out.read_text()), rel=1e-9)
    records = list(trace.read(path=tmp_path / "state" / "tinyarms" / "trace.jsonl"))
    assert len(records) == EDITORS * REQUESTS and all(r.get("tier") for r in records)
    total = sum(float(out.read_text()) for out in outs)
    assert total > 0
    assert costs.spent("chat", path=ledger).day == pytest.approx(total, rel=1e-9)
    assert sum(r["cost_usd"] for r in records) == pytest.approx(total, rel=1e-6)


HOLD_LOCK = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
conn.execute("COMMIT")
"""


def test_a_lock_held_past_the_busy_timeout_is_waited_out(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(db, "BUSY_TIMEOUT_S", 0.2)  # another process will hold the lock for 1.2 s
    ledger = tmp_path / "spend.sqlite"
    costs.record("chat", "team", Usage(prompt_tokens=10), 0.5, path=ledger)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(ledger), "1.2"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        costs.record("chat", "team", Usage(prompt_tokens=10), 0.25, path=ledger)  # waits ~1 s, then writes
    finally:
        holder.wait(10)
    assert ledger not in costs._memory  # still the shared file, not this process's memory
    with sqlite3.connect(ledger) as conn:
        assert conn.execute("SELECT COUNT(*), SUM(usd) FROM spend").fetchone() == (2, 0.75)
    db.forget(ledger)
