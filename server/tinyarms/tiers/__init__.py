"""`tiers/`: a role's chain of tiers, the one place every model call that may cost money
goes through: the walk (chain.py), retries (attempt.py), the cascade, cooldowns
(health.py), pooled HTTP clients, the response cache, costs and budgets, and the
decision trace (record.py, trace.py).

The package's interface is `run_role` and what it returns or raises; callers
(`requests/`, benchmarks) use these names."""

from tinyarms.tiers.chain import (
    PROCESS,
    AllTiersFailed,
    Answer,
    BudgetExceeded,
    Shared,
    aclose,
    reset_cooldowns,
    run_role,
)

__all__ = ["PROCESS", "AllTiersFailed", "Answer", "BudgetExceeded", "Shared", "aclose", "reset_cooldowns", "run_role"]
