"""Prices and budgets.

Prices come from the `genai-prices` table (pinned to a release that runs offline on plain
httpx), a tier's `price` in TOML overrides it, and local tiers cost 0. Spend is kept in a
small SQLite file in the platformdirs data dir, in WAL mode with a busy timeout and one
short transaction per record, so several servers (several editors) can add to it at once: a
lock held past the busy timeout is waited for again, never mistaken for a broken file
(tests/test_spend_load.py: 8 processes x 50 requests at once, every total exact).

A broken ledger never drops a limit: a corrupt file is moved aside (`spend.sqlite.corrupt-…`),
the rows SQLite can still read from it are carried into a new one, and a warning says so;
when the data folder cannot hold a ledger at all, spend is counted in memory for this
process, so budgets still hold for everything it sends.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, closing
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Literal, TypeVar

import platformdirs
from attrs import define

from tinyarms.backends.registry import provider
from tinyarms.tiers import db

if TYPE_CHECKING:
    from tinyarms.backends import Usage
    from tinyarms.config import Tier
    from tinyarms.config.schema import Budgets

log = logging.getLogger(__name__)

PriceSource = Literal["local", "config", "genai-prices", "unknown"]


@define
class Cost:
    usd: float
    source: PriceSource


def _table_cost(tier: Tier, usage: Usage) -> float | None:
    """USD from genai-prices for this exact usage (prices can be tiered by prompt length), or None."""
    try:
        from genai_prices import Usage as PriceUsage
        from genai_prices import calc_price
    except ImportError:
        return None
    tokens = PriceUsage(
        input_tokens=usage.prompt_tokens,  # genai-prices counts cached tokens inside input_tokens, as we do
        cache_read_tokens=usage.cache_read_tokens or None,
        cache_write_tokens=usage.cache_write_tokens or None,
        output_tokens=usage.completion_tokens,
    )
    try:
        provider_id = provider(tier.provider).prices_at(tier.endpoints[0])
        return float(calc_price(tokens, model_ref=tier.model, provider_id=provider_id).total_price)
    except (LookupError, ValueError):
        return None


def cost(tier: Tier, usage: Usage) -> Cost:
    if not tier.is_remote:
        return Cost(0.0, "local")
    if tier.price is not None:
        usd = (
            usage.prompt_tokens * tier.price.input_per_mtok + usage.completion_tokens * tier.price.output_per_mtok
        ) / 1_000_000
        return Cost(usd, "config")
    table = _table_cost(tier, usage)
    return Cost(0.0, "unknown") if table is None else Cost(table, "genai-prices")


def may_cost(tier: Tier) -> bool:
    """Whether a call to this tier can spend money (so budgets apply to it)."""
    if not tier.is_remote:
        return False
    if tier.price is not None:
        return tier.price.input_per_mtok > 0 or tier.price.output_per_mtok > 0
    return True


# -- the ledger ----------------------------------------------------------------------------


def ledger_path() -> Path:
    return platformdirs.user_data_path("tinyarms") / "spend.sqlite"


_SCHEMA = """
CREATE TABLE IF NOT EXISTS spend (
    ts REAL NOT NULL, day TEXT NOT NULL, month TEXT NOT NULL,
    role TEXT NOT NULL, tier TEXT NOT NULL,
    prompt_tokens INTEGER NOT NULL, completion_tokens INTEGER NOT NULL, usd REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS spend_day ON spend (day, role);
CREATE INDEX IF NOT EXISTS spend_month ON spend (month, role);
"""


def _connect(path: Path | None = None) -> AbstractContextManager[sqlite3.Connection]:
    return db.connect(path or ledger_path(), _SCHEMA)


T = TypeVar("T")
_memory: dict[Path, sqlite3.Connection] = {}  # ledgers kept in memory (their folder cannot hold a file)
_COLUMNS = "ts, day, month, role, tier, prompt_tokens, completion_tokens, usd"


def _with_ledger(path: Path | None, work: Callable[[sqlite3.Connection], T]) -> T:
    """Run `work` on the ledger, repairing or replacing it when the file is unusable."""
    target = path or ledger_path()
    if target in _memory:
        return work(_memory[target])
    try:
        return _on_file(target, work)
    except db.UNUSABLE as exc:
        if db.busy(exc):
            raise  # a file busy for a minute is not broken: counting in memory would split the ledger
        if db.corrupt(exc):
            try:
                _replace_corrupt(target, exc)
                with _connect(target) as conn:
                    return work(conn)
            except db.UNUSABLE as again:
                exc = again
        log.warning("the spend ledger %s cannot be used (%s); counting spend in memory for this process", target, exc)
        db.forget(target)
        memory = _memory[target] = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
        memory.executescript(_SCHEMA)
        return work(memory)


def _on_file(target: Path, work: Callable[[sqlite3.Connection], T]) -> T:
    """`work` in the ledger file. Many editors' servers write it at once: a write lock held past
    the busy timeout is waited for again (up to `db.LOCKED_GIVE_UP_S`), never taken for a broken
    file. Each `work` is one transaction, so a retry never counts a row twice."""
    give_up = time.monotonic() + db.LOCKED_GIVE_UP_S
    while True:
        try:
            with _connect(target) as conn:
                return work(conn)
        except sqlite3.OperationalError as exc:
            if not db.busy(exc) or time.monotonic() >= give_up:
                raise
            log.info("the spend ledger %s is busy (%s); waiting again", target, exc)


def _replace_corrupt(path: Path, exc: BaseException) -> None:
    """Move a corrupt ledger aside and start a new one with every row that can still be read."""
    rows: list[tuple[object, ...]] = []
    try:
        with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as old:
            rows = old.execute(f"SELECT {_COLUMNS} FROM spend").fetchall()
    except sqlite3.Error:
        pass  # nothing readable: the limits count from now on
    aside = db.move_aside(path)
    with _connect(path) as conn:
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(f"INSERT INTO spend ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
        conn.execute("COMMIT")
    log.warning(
        "the spend ledger %s was corrupt (%s): moved to %s; a new one holds the %d records that could be read%s",
        path, exc, aside, len(rows), "" if rows else " (spend before now is not counted against the budgets)",
    )  # fmt: skip


def _periods(now: float) -> tuple[str, str]:
    # Local calendar days and months: that is what a user means by "per day".
    local = datetime.fromtimestamp(now, UTC).astimezone()
    return local.strftime("%Y-%m-%d"), local.strftime("%Y-%m")


def record(role: str, tier: str, usage: Usage, usd: float, *, path: Path | None = None) -> None:
    if usd <= 0 and not usage.prompt_tokens and not usage.completion_tokens:
        return
    now = time.time()
    day, month = _periods(now)

    def insert(conn: sqlite3.Connection) -> None:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute(
            "INSERT INTO spend VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (now, day, month, role, tier, usage.prompt_tokens, usage.completion_tokens, usd),
        )
        conn.execute("COMMIT")

    _with_ledger(path, insert)


@define
class Spent:
    day: float
    month: float
    role_day: float
    role_month: float


def spent(role: str, *, path: Path | None = None, now: float | None = None) -> Spent:
    day, month = _periods(now or time.time())

    def read(conn: sqlite3.Connection) -> Spent:
        conn.execute("BEGIN")
        row = conn.execute(
            "SELECT COALESCE(SUM(usd), 0), COALESCE(SUM(CASE WHEN role = ? THEN usd END), 0) FROM spend WHERE day = ?",
            (role, day),
        ).fetchone()
        mrow = conn.execute(
            "SELECT COALESCE(SUM(usd), 0), COALESCE(SUM(CASE WHEN role = ? THEN usd END), 0) "
            "FROM spend WHERE month = ?",
            (role, month),
        ).fetchone()
        conn.execute("COMMIT")
        return Spent(day=row[0], month=mrow[0], role_day=row[1], role_month=mrow[1])

    return _with_ledger(path, read)


@define
class BudgetCheck:
    exceeded: str | None  # which limit, in words, when one is reached
    warning: str | None  # which limit is past `warn_at`


def check(budgets: Budgets, role: str, *, path: Path | None = None) -> BudgetCheck:
    """Where this role's spend stands against every limit that applies to it."""
    limits: list[tuple[str, float, float]] = []
    role_limit = budgets.roles.get(role)
    role_limited = role_limit is not None and (role_limit.daily_usd > 0 or role_limit.monthly_usd > 0)
    if not (budgets.daily_usd > 0 or budgets.monthly_usd > 0 or role_limited):
        return BudgetCheck(None, None)
    now = spent(role, path=path)
    limits += [("daily budget", budgets.daily_usd, now.day), ("monthly budget", budgets.monthly_usd, now.month)]
    if role_limit:
        limits += [
            (f"daily budget of role '{role}'", role_limit.daily_usd, now.role_day),
            (f"monthly budget of role '{role}'", role_limit.monthly_usd, now.role_month),
        ]
    exceeded = warning = None
    for what, limit, used in limits:
        if limit <= 0:
            continue
        if used >= limit and exceeded is None:
            exceeded = f"the {what} of ${limit:.2f} is spent (${used:.4f})"
        elif used >= budgets.warn_at * limit and warning is None:
            warning = f"{used / limit:.0%} of the {what} of ${limit:.2f} is spent"
    return BudgetCheck(exceeded, warning)
