"""Exceptions of promptstate, and the exit codes of the ``promptstate`` command.

Every error a user can cause is a :class:`PromptstateError` whose message names the file, the
row or the entry and says what to do. The CLI prints the message as one line on stderr and exits
with :attr:`PromptstateError.exit_code`.

Exit codes (one contract for every command):

- ``0`` (:data:`EXIT_OK`) — ok;
- ``1`` (:data:`EXIT_PROBLEM`) — a check found a problem (regression, SRM, unexpected crossover,
  a leg needing confirmation, a failed rollback action, a report that needs attention);
- ``2`` (:data:`EXIT_BAD_INPUT`) — bad input: nothing the user owns was changed;
- ``3`` (:data:`EXIT_STALE_BASELINE`) — stale or invalid baseline (``gate``, ``baseline verify``,
  ``baseline sync``);
- ``4`` (:data:`EXIT_INTERNAL`) — internal error (a bug: one line, the traceback under
  ``--debug``).

Where several apply, :func:`worst_exit` picks one by the precedence 4 > 2 > 3 > 1 > 0.
"""

from __future__ import annotations

__all__ = [
    "EXIT_BAD_INPUT",
    "EXIT_INTERNAL",
    "EXIT_OK",
    "EXIT_PROBLEM",
    "EXIT_STALE_BASELINE",
    "SCHEMA_VERSION",
    "BaselineError",
    "EventsError",
    "InvalidBaselineError",
    "LedgerError",
    "PromptstateError",
    "ResultsError",
    "RollbackError",
    "RollbackIncompleteError",
    "RollbackRefusedError",
    "StaleBaselineError",
    "worst_exit",
]

EXIT_OK = 0
EXIT_PROBLEM = 1
EXIT_BAD_INPUT = 2
EXIT_STALE_BASELINE = 3
EXIT_INTERNAL = 4

#: Version of every JSON output's shape (``"schema_version"``, first key); ``docs/schemas/``.
SCHEMA_VERSION = 1

#: Exit codes from the one that wins to the one that yields.
_PRECEDENCE = (EXIT_INTERNAL, EXIT_BAD_INPUT, EXIT_STALE_BASELINE, EXIT_PROBLEM, EXIT_OK)


def worst_exit(*codes: int) -> int:
    """The exit code that wins among ``codes`` (4 > 2 > 3 > 1 > 0); 0 when none is given.

    >>> worst_exit(1, 3)
    3
    >>> worst_exit(3, 2, 1)
    2
    >>> worst_exit()
    0
    """
    unknown = sorted(set(codes) - set(_PRECEDENCE), key=repr)
    if unknown:
        raise ValueError(f"unknown exit code(s) {unknown}; use 0-4")
    for code in _PRECEDENCE:
        if code in codes:
            return code
    return EXIT_OK


class PromptstateError(ValueError):
    """Base class of promptstate's errors; ``exit_code`` is what the CLI exits with."""

    exit_code: int = 2


class LedgerError(PromptstateError):
    """The rollout ledger is malformed or inconsistent."""


class EventsError(PromptstateError):
    """The event export cannot be used as it is (missing column, wrong type, unknown arm...)."""


class BaselineError(PromptstateError):
    """A baseline-store request cannot be carried out as given: a suite config, a suite or version
    name, an option (bad input, exit code 2)."""


class InvalidBaselineError(BaselineError):
    """A stored baseline is invalid: its files disagree with its metadata or its journal entry
    (tampering, a torn write), or the version a journal names is missing (exit code 3)."""

    exit_code = 3


class StaleBaselineError(BaselineError):
    """The reference baseline belongs to a reverted revision or not to the live revision."""

    exit_code = 3


class RollbackError(PromptstateError):
    """The rollback cannot be planned or applied as asked (exit code 2)."""


class RollbackRefusedError(RollbackError):
    """``rollback apply`` refuses: a leg needs a person's confirmation first (exit code 1).

    Nothing was changed; the message names the ``--confirm`` flags to add.
    """

    exit_code = 1


class RollbackIncompleteError(RollbackError):
    """An action of ``rollback apply`` failed after an earlier one had run (exit code 1).

    The message names the steps done, the step that failed and why, and says to re-run the same
    command (apply is idempotent: it completes what is missing).

    Attributes:
        done: Names of the steps that had completed.
        failed: Name of the step that failed.
    """

    exit_code = 1

    def __init__(self, message: str, *, done: tuple[str, ...] = (), failed: str = "") -> None:
        super().__init__(message)
        self.done = done
        self.failed = failed


class ResultsError(PromptstateError):
    """An eval-results file is malformed (missing ids, duplicates, non-numeric scores, NaNs)."""

    exit_code = 2
