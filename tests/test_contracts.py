"""contract_check: consumer × revision compatibility and observed parse failures."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl
import pytest

from analysis.ledger import parse_ledger
from analysis.rollback.contracts import contract_check


def _ledger() -> Any:
    return parse_ledger(
        {
            "version": 1,
            "prompts": {
                "p": {
                    "revisions": {
                        "a": {"contract": "v1"},
                        "b": {"parent": "a", "contract": "v2"},
                        "c": {"parent": "b"},
                    }
                },
                "q": {"revisions": {"x": {"contract": "v1"}}},
            },
            "consumers": {
                "new-only": {"prompt": "p", "accepts": ["v2"]},
                "both": {"prompt": "p", "accepts": ["v1", "v2"]},
                "legacy": {"prompt": "p", "accepts": ["v0"]},
                "other": {"prompt": "q", "accepts": ["v1"]},
            },
        }
    )


def test_change_statuses() -> None:
    check = contract_check(_ledger(), "p")
    status = {c.name: c.status for c in check.change("b", "a")}
    assert status == {"new-only": "breaks", "both": "ok", "legacy": "incompatible"}
    assert check.breaking("b", "a") == ("new-only",)
    assert check.breaking("a", "b") == ()
    # an unrecorded contract is not a break, but unknown
    assert {c.status for c in check.change("b", "c")} == {"unknown"}
    # several old revisions (both arms of a canary): breaks when any old contract was accepted
    assert check.breaking(["a", "b"], "a") == ("new-only",)


def test_matrix_lists_every_consumer_of_the_prompt_and_revision() -> None:
    check = contract_check(_ledger(), "p")
    rows = check.matrix.to_dicts()
    assert len(rows) == 3 * 3
    assert {r["consumer"] for r in rows} == {"new-only", "both", "legacy"}
    row = next(r for r in rows if (r["consumer"], r["revision"]) == ("new-only", "a"))
    assert row["accepted"] is False


def test_parse_failures_match_brute_force(events_path: Path, ledger_path: Path) -> None:
    check = contract_check(ledger_path, events=events_path)
    assert check.parse_checked
    raw = pl.read_parquet(events_path).unique(subset="event_id", keep="first")
    for row in check.parse_failures.rows:
        sub = raw.filter(
            (pl.col("contract_version") == row.contract_version)
            & (pl.col("consumer") == row.consumer)
        )
        assert row.events == sub.height
        assert row.failures == int((~sub["parse_ok"]).sum())
    # the sample's story: ticket-router cannot parse v3
    assert check.failure_rate("v3", "ticket-router") == pytest.approx(1.0)
    assert check.failure_rate("v3", "analytics-etl") < 0.01
    assert check.breaking("r42", "r41") == ("ticket-router",)


def test_without_the_columns_parse_failures_are_not_checked(
    events_path: Path, ledger_path: Path
) -> None:
    events = pl.read_parquet(events_path).drop("parse_ok")
    check = contract_check(ledger_path, events=events)
    assert not check.parse_checked
    assert len(check.parse_failures) == 0
    assert "consumers x revisions" in str(check)
