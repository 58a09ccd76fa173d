"""promptfoo output JSON (``promptfoo eval -o results.json``) read into the results table.

The mapping (docs/eval-tools.md):

* one row per entry of ``results.results[]`` — a test case run once against one prompt and one
  provider; the file must hold a single prompt and provider (one revision);
* ``example_id``: the test's ``metadata.example_id`` or ``metadata.id``, else its
  ``description``, else ``vars:`` and 16 hex digits of the SHA-256 of its canonical ``vars``
  (sorted keys, compact JSON) — stable across runs and prompt revisions;
* ``sample``: 0, 1, … in file order among the entries of one test (``--repeat N``); two
  entries with one id but different ``vars`` or assertions are a duplicate id (an error);
* metrics: ``score`` (promptfoo's overall score) and ``pass`` (1/0, the test's success); per
  assertion, named by its ``metric`` or else its ``type``: ``<name>`` (its score, the mean when
  several assertions share the name) and ``<name>.pass`` (1 when all of them passed);
* ``grader``: the grading provider(s) — the test's ``options.provider`` and the assertions'
  ``provider`` — joined with ``+``; none when no assertion uses a grading model;
* revision: the prompt's ``label`` when it is set apart from the prompt text (not promptfoo's
  default label of a prompt file, ``file://…``).
"""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Any

from analysis.errors import ResultsError
from analysis.evals._formats import ToolTable

if TYPE_CHECKING:
    import polars as pl

__all__ = ["read_promptfoo", "vars_id"]

_RESERVED = ("example_id", "sample", "grader", "score", "pass")
_ERROR = 2  # promptfoo's ResultFailureReason.ERROR


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def vars_id(test_vars: Any) -> str:
    """The example id of a test without an explicit id: ``vars:`` + 16 hex of its vars' hash.

    >>> vars_id({"b": 1, "a": "x"}) == vars_id({"a": "x", "b": 1})
    True
    """
    digest = hashlib.sha256(_canonical(test_vars).encode("utf-8")).hexdigest()
    return f"vars:{digest[:16]}"


def _provider_id(provider: Any) -> str | None:
    if isinstance(provider, str):
        return provider or None
    if isinstance(provider, dict):
        for key in ("id", "label"):
            if isinstance(provider.get(key), str) and provider[key]:
                return str(provider[key])
    return None


def _where(i: int, r: dict[str, Any]) -> str:
    idx = r.get("testIdx")
    test = f" (test #{idx})" if isinstance(idx, int) else ""
    return f"results.results[{i}]{test}"


def _example_id(name: str, i: int, r: dict[str, Any], tc: dict[str, Any], tvars: Any) -> str:
    meta = tc.get("metadata")
    if isinstance(meta, dict):
        for key in ("example_id", "id"):
            if key in meta:
                value = meta[key]
                if isinstance(value, bool) or not isinstance(value, str | int) or str(value) == "":
                    raise ResultsError(
                        f"{name}: {_where(i, r)}: testCase.metadata.{key} is {value!r}, not an "
                        "id; give each test a non-empty text or integer id"
                    )
                return str(value)
    desc = tc.get("description")
    if isinstance(desc, str) and desc.strip():
        return desc
    if isinstance(tvars, dict) and tvars:
        return vars_id(tvars)
    raise ResultsError(
        f"{name}: {_where(i, r)}: no example id — the test has no testCase.metadata.id, no "
        "testCase.description and no vars; give it a description or metadata id"
    )


def read_promptfoo(obj: dict[str, Any], name: str) -> ToolTable:
    """Rows of a parsed promptfoo output file ``name`` (see the module docstring).

    The loop only collects flat lists (one entry per result and per assertion); the per-metric
    means and pass flags are aggregated by polars.

    Raises:
        ResultsError: No results, several prompts or providers, a missing or duplicated example
            id, a score that is not a number, an assertion metric named like a reserved column.
    """
    results = obj["results"]["results"]
    if not results:
        raise ResultsError(f"{name}: results.results[] is empty; re-run the eval")
    ids: list[str] = []
    samples: list[int] = []
    scores: list[Any] = []
    passes: list[Any] = []
    c_row: list[int] = []  # one entry per assertion result
    c_metric: list[str] = []
    c_score: list[Any] = []
    c_pass: list[bool] = []
    providers: dict[int, set[str]] = {}
    seen: dict[str, list[Any]] = {}  # id -> [first index, count, vars, assert]
    runs: dict[tuple[Any, Any], tuple[int, str]] = {}  # (prompt, provider) -> (index, label)
    n_errors = n_unnamed = 0
    empty: dict[str, Any] = {}
    for i, r in enumerate(results):
        if type(r) is not dict:
            raise ResultsError(f"{name}: results.results[{i}] is not an object")
        tc = r.get("testCase")
        if type(tc) is not dict:
            tc = empty
        tvars = tc.get("vars", r.get("vars"))
        eid = _example_id(name, i, r, tc, tvars)
        asserts = tc.get("assert")
        prev = seen.get(eid)
        if prev is None:
            seen[eid] = [i, 1, tvars, asserts]
            samples.append(0)
        elif prev[2] != tvars or prev[3] != asserts:
            raise ResultsError(
                f"{name}: duplicated example id {eid!r}: {_where(prev[0], results[prev[0]])} and "
                f"{_where(i, r)} are different tests (vars or assertions differ); give each test "
                "a unique description or testCase.metadata.id"
            )
        else:
            samples.append(prev[1])
            prev[1] += 1
        ids.append(eid)
        prompt = r.get("prompt")
        provider = r.get("provider")
        run = (
            r.get("promptId") or (_canonical(prompt) if prompt else None),
            provider.get("id") if type(provider) is dict else provider,
        )
        if run not in runs:
            runs[run] = (i, _label(prompt))
        if r.get("failureReason") == _ERROR:
            n_errors += 1
        grading = r.get("gradingResult")
        if type(grading) is not dict:
            grading = empty
        scores.append(r.get("score", grading.get("score")))
        passes.append(r.get("success", grading.get("pass")))
        options = tc.get("options")
        if options:
            found = _provider_id(options.get("provider"))
            if found:
                providers.setdefault(i, set()).add(found)
        comps = grading.get("componentResults")
        if not comps:
            continue
        # a javascript/python assertion that returns a result object has no `assertion` in its
        # component result: it is the test's assertion at the same position
        aligned = type(asserts) is list and len(asserts) == len(comps)
        for j, comp in enumerate(comps):
            if type(comp) is not dict:
                n_unnamed += 1
                continue
            assertion = comp.get("assertion")
            if not assertion and aligned:
                assertion = asserts[j]  # type: ignore[index]
            if type(assertion) is not dict:
                n_unnamed += 1
                continue
            metric = assertion.get("metric") or assertion.get("type")
            if not metric:
                n_unnamed += 1
                continue
            if type(metric) is not str:
                metric = str(metric)
            if "provider" in assertion:
                found = _provider_id(assertion["provider"])
                if found:
                    providers.setdefault(i, set()).add(found)
            c_row.append(i)
            c_metric.append(metric)
            c_score.append(comp.get("score"))
            c_pass.append(bool(comp.get("pass")))

    if len(runs) > 1:
        listed = ", ".join(
            f"prompt {label or _where(k, results[k])} on {p or '?'}"
            for (_, p), (k, label) in list(runs.items())[:4]
        )
        raise ResultsError(
            f"{name}: {len(runs)} prompt/provider combinations in one file ({listed}); the gate "
            "compares one prompt revision — run promptfoo with one prompt and one provider (e.g. "
            "--filter-prompts / --filter-providers)"
        )
    graders: list[str | None] = [None] * len(ids)
    for k, ids_of_row in providers.items():
        graders[k] = "+".join(sorted(ids_of_row))
    table, first_missing = _table(
        name, results, ids, samples, scores, passes, graders, (c_row, c_metric, c_score, c_pass)
    )
    notes = []
    if n_unnamed:
        notes.append(
            f"{name}: {n_unnamed} assertion result(s) without their assertion, metric or type "
            "(nothing to name them by) were not read"
        )
    if n_errors:
        notes.append(
            f"{name}: {n_errors} result(s) ended in an error (promptfoo scored them as failures)"
        )
    revision = next(iter(runs.values()))[1] or None
    return ToolTable(table=table, revision=revision, notes=notes, first_missing=first_missing)


def _label(prompt: Any) -> str:
    """The prompt's label when it is set apart from the prompt text (a revision name)."""
    if type(prompt) is not dict:
        return ""
    label = prompt.get("label")
    if not isinstance(label, str) or not label or label == prompt.get("raw"):
        return ""
    # promptfoo's default label of a prompt file is its path (and text): not a revision name
    return "" if label.startswith("file://") or "\n" in label else label


def _table(
    name: str,
    results: list[Any],
    ids: list[str],
    samples: list[int],
    scores: list[Any],
    passes: list[Any],
    graders: list[str | None],
    comps: tuple[list[int], list[str], list[Any], list[bool]],
) -> tuple[pl.DataFrame, dict[str, str]]:
    """The wide table and, per metric some results do not score, the first of them."""
    import polars as pl

    c_row, c_metric, c_score, c_pass = comps
    table = pl.DataFrame(
        {
            "_row": pl.Series(range(len(ids)), dtype=pl.Int64),
            "example_id": pl.Series(ids, dtype=pl.String),
            "sample": pl.Series(samples, dtype=pl.Int64),
            "score": _floats(name, results, list(range(len(ids))), "score", scores),
            "pass": _floats(name, results, list(range(len(ids))), "success", passes),
        }
    )
    if c_row:
        long = pl.DataFrame(
            {
                "_row": pl.Series(c_row, dtype=pl.Int64),
                "metric": pl.Series(c_metric, dtype=pl.String),
                "value": _floats(
                    name, results, c_row, "gradingResult.componentResults[].score", c_score
                ),
                "ok": pl.Series(c_pass, dtype=pl.Boolean),
            }
        )
        bad = long.filter(
            pl.col("metric").is_in(_RESERVED) | pl.col("metric").str.ends_with(".pass")
        )
        if bad.height:
            k, metric = bad.row(0)[:2]
            raise ResultsError(
                f"{name}: {_where(k, results[k])}: an assertion has metric name {metric!r}, "
                "which collides with a column of the results table (example_id, sample, grader, "
                "score, pass, *.pass); rename its `metric:`"
            )
        agg = long.group_by("_row", "metric").agg(
            pl.col("value").mean().alias("v"), pl.col("ok").all().cast(pl.Float64).alias("p")
        )
        order = list(dict.fromkeys(c_metric))
        wide = agg.pivot("metric", index="_row", values=["v", "p"], aggregate_function=None)
        renamed = {f"v_{m}": m for m in order} | {f"p_{m}": f"{m}.pass" for m in order}
        if len(order) == 1:  # polars names single-metric pivot columns without the prefix
            wide = agg.select(
                "_row", pl.col("v").alias(order[0]), pl.col("p").alias(f"{order[0]}.pass")
            )
        else:
            wide = wide.rename({c: renamed[c] for c in wide.columns if c in renamed})
        cols = [c for m in order for c in (m, f"{m}.pass")]
        table = table.join(wide.select("_row", *cols), on="_row", how="left")
    table = table.with_columns(pl.Series("grader", graders, dtype=pl.String))
    first_missing: dict[str, str] = {}
    metric_cols = [c for c in table.columns if c not in ("_row", "example_id", "sample", "grader")]
    nulls = table.select(pl.col(c).is_null().arg_max() for c in metric_cols).row(0)
    counts = table.select(pl.col(c).null_count() for c in metric_cols).row(0)
    for col, k, count in zip(metric_cols, nulls, counts, strict=True):
        if count:
            field = {"score": "score", "pass": "success"}.get(col, "gradingResult.componentResults")
            first_missing[col] = f"{_where(k, results[k])} (field {field})"
    return table.drop("_row"), first_missing


def _floats(
    name: str, results: list[Any], rows: list[int], field: str, values: list[Any]
) -> pl.Series:
    """``values`` as Float64; an error names the first result whose value is not a number."""
    import polars as pl

    try:
        return pl.Series(values, dtype=pl.Float64, strict=True)
    except (TypeError, ValueError, pl.exceptions.PolarsError):
        pass
    fixed: list[float | None] = []
    for k, v in zip(rows, values, strict=True):
        if v is None or (isinstance(v, int | float) and not isinstance(v, bool)):
            fixed.append(v)
        elif isinstance(v, bool):
            fixed.append(1.0 if v else 0.0)
        else:
            raise ResultsError(
                f"{name}: {_where(k, results[k])}: {field} is {v!r}, not a number; pass the "
                "file promptfoo wrote, unmodified"
            )
    return pl.Series(fixed, dtype=pl.Float64)
