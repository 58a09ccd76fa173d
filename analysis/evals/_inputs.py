"""Requests to the baseline store checked before anything is read or written.

:func:`check_revert_request` refuses a revert that cannot be meant (the same revision on both
sides, a malformed ledger key).
"""

from __future__ import annotations

import re

from analysis.errors import BaselineError

__all__ = ["check_revert_request"]


_LEDGER_KEY = re.compile(r"(0|[1-9][0-9]*):(.+)")


def check_revert_request(suite: str, reverted: str, restored: str, ledger_key: str | None) -> None:
    """Refuse a revert that cannot be meant (exit code 2, before anything is written)."""
    if not reverted or not restored:
        raise BaselineError(
            f"revert {suite}: --reverted and --restored must both name a revision (nothing was "
            "written)"
        )
    if reverted == restored:
        raise BaselineError(
            f"revert {suite}: --reverted and --restored are both {reverted!r}; a revert restores "
            "another revision than the one it reverts — name the revision the rollback went back "
            "to with --restored (nothing was written)"
        )
    if ledger_key is None:
        return
    match = _LEDGER_KEY.fullmatch(ledger_key)
    if match is None or match.group(2) != reverted:
        raise BaselineError(
            f"revert {suite}: ledger key {ledger_key!r} is not '<transition index>:{reverted}' "
            "with a transition index >= 0 (--ledger-transition N: the index of the rollback in "
            "the ledger's transitions, counted from 0); nothing was written"
        )
