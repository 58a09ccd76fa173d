"""Exceptions of promptstate.

Every error a user can cause is a :class:`PromptstateError` whose message names the file, the
row or the entry and says what to do. The CLI prints the message as one line on stderr and exits
with :attr:`PromptstateError.exit_code` (2 for bad input, 3 for a stale or invalid baseline).
"""

from __future__ import annotations

__all__ = [
    "BaselineError",
    "EventsError",
    "LedgerError",
    "PromptstateError",
    "ResultsError",
    "RollbackError",
    "StaleBaselineError",
]


class PromptstateError(ValueError):
    """Base class of promptstate's errors; ``exit_code`` is what the CLI exits with."""

    exit_code: int = 2


class LedgerError(PromptstateError):
    """The rollout ledger is malformed or inconsistent."""


class EventsError(PromptstateError):
    """The event export cannot be used as it is (missing column, wrong type, unknown arm...)."""


class BaselineError(PromptstateError):
    """The baseline store or an eval-results file is malformed or inconsistent."""

    exit_code = 3


class StaleBaselineError(BaselineError):
    """The reference baseline belongs to a reverted revision or not to the live revision."""

    exit_code = 3


class RollbackError(PromptstateError):
    """The rollback cannot be planned or applied as asked (exit code 2)."""


class ResultsError(PromptstateError):
    """An eval-results file is malformed (missing ids, duplicates, non-numeric scores, NaNs)."""

    exit_code = 2
