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

Two ways in, one mapping: a file decoded by msgspec into the fields read here
(:class:`~analysis.evals._formats.PromptfooDoc`; :func:`_read_decoded`, which decodes each
distinct test case once) and a file parsed by ``json`` (:func:`_read_parsed`) fill the same flat
lists (:class:`_Rows`), whose checks, errors and table are shared; tests/test_eval_fast_read.py
checks that both give the same table, notes and errors.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from analysis.errors import ResultsError
from analysis.evals._formats import (
    UNSET,
    PromptfooDoc,
    ToolTable,
    decode_json,
    decode_test,
    no_gc,
)

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


def _where(i: int, test_idx: Any) -> str:
    test = f" (test #{test_idx})" if isinstance(test_idx, int) else ""
    return f"results.results[{i}]{test}"


def _example_id(name: str, i: int, test_idx: Any, tc: dict[str, Any], tvars: Any) -> str:
    """The example id of result ``i``: test case ``tc`` (its ``metadata`` and ``description``
    are read) with the vars ``tvars`` (parsed, or raw JSON ``bytes``)."""
    meta = tc.get("metadata")
    if isinstance(meta, dict):
        for key in ("example_id", "id"):
            if key in meta:
                value = meta[key]
                if isinstance(value, bool) or not isinstance(value, str | int) or str(value) == "":
                    raise ResultsError(
                        f"{name}: {_where(i, test_idx)}: testCase.metadata.{key} is {value!r}, "
                        "not an id; give each test a non-empty text or integer id"
                    )
                return str(value)
    desc = tc.get("description")
    if isinstance(desc, str) and desc.strip():
        return desc
    tvars = _parsed(tvars)
    if isinstance(tvars, dict) and tvars:
        return vars_id(tvars)
    raise ResultsError(
        f"{name}: {_where(i, test_idx)}: no example id — the test has no testCase.metadata.id, "
        "no testCase.description and no vars; give it a description or metadata id"
    )


def _options_provider(tc: dict[str, Any]) -> str | None:
    """The grading provider of a test's ``options`` (a ``defaultTest`` one included)."""
    options = tc.get("options")
    return _provider_id(options.get("provider")) if type(options) is dict else None


_UNNAMED: tuple[str | None, str | None] = (None, None)


def _assertion_name(assertion: Any) -> tuple[str | None, str | None]:
    """``(metric name, grading provider)`` of an assertion: its ``metric``, else its ``type``;
    ``(None, None)`` when it is not an object or has neither."""
    if type(assertion) is not dict:
        return _UNNAMED
    metric = assertion.get("metric") or assertion.get("type")
    if not metric:
        return _UNNAMED
    provider = _provider_id(assertion["provider"]) if "provider" in assertion else None
    return (metric if type(metric) is str else str(metric)), provider


class _Rows:
    """The flat lists a promptfoo file is read into (one entry per result and per assertion
    result), filled by either decoding of the file; polars aggregates them (:func:`_table`).
    """

    def __init__(self, name: str, test_idx: Callable[[int], Any]) -> None:
        self.name = name
        self.test_idx = test_idx  # result index -> its testIdx (for messages)
        self.ids: list[str] = []
        self.samples: list[int] = []
        self.scores: list[Any] = []
        self.passes: list[Any] = []
        self.c_row: list[int] = []
        self.c_metric: list[str] = []
        self.c_score: list[Any] = []
        self.c_pass: list[bool] = []
        self.graders: dict[int, str] = {}  # result index -> its grading providers, joined
        self.joined: dict[frozenset[str], str] = {}
        self.first: dict[str, tuple[int, Any, Any]] = {}  # id -> (first index, vars, assert)
        self.count: dict[str, int] = {}  # id -> results so far
        self.runs: dict[tuple[Any, Any], tuple[int, str]] = {}  # (prompt, provider) -> first
        self.n_errors = 0
        self.n_unnamed = 0

    def where(self, i: int) -> str:
        return _where(i, self.test_idx(i))

    def example(self, i: int, eid: str, tvars: Any, asserts: Any) -> None:
        """Result ``i`` is a run of test ``eid``: its sample number, or a duplicated id.

        ``tvars`` and ``asserts`` are the test's vars and assertions, parsed or as their raw
        JSON (``bytes``, compared as text first, then as what they decode to)."""
        prev = self.first.get(eid)
        if prev is None:
            self.first[eid] = (i, tvars, asserts)
            self.count[eid] = 1
            self.samples.append(0)
        elif not (_same(prev[1], tvars) and _same(prev[2], asserts)):
            raise ResultsError(
                f"{self.name}: duplicated example id {eid!r}: {self.where(prev[0])} and "
                f"{self.where(i)} are different tests (vars or assertions differ); give each "
                "test a unique description or testCase.metadata.id"
            )
        else:
            n = self.count[eid]
            self.samples.append(n)
            self.count[eid] = n + 1
        self.ids.append(eid)

    def run(self, i: int, prompt_id: Any, prompt: Any, provider: Any) -> None:
        """Result ``i`` ran ``prompt`` on ``provider``: a new combination is remembered."""
        run = (
            _key(prompt_id) or (_canonical(prompt) if prompt else None),
            _key(provider.get("id") if type(provider) is dict else provider),
        )
        if run not in self.runs:
            self.runs[run] = (i, _label(prompt))

    def join(self, providers: frozenset[str]) -> str:
        """The grader of a result graded by ``providers``: their ids, sorted, joined by ``+``."""
        joined = self.joined.get(providers)
        if joined is None:
            joined = self.joined[providers] = "+".join(sorted(providers))
        return joined

    def set_graders(self, i: int, found: set[str]) -> None:
        """Result ``i`` was graded by the providers ``found``."""
        self.graders[i] = self.join(frozenset(found))

    def finish(self) -> ToolTable:
        """The table, the notes and the revision; several prompts or providers are an error."""
        name = self.name
        if len(self.runs) > 1:
            listed = ", ".join(
                f"prompt {label or self.where(k)} on {p or '?'}"
                for (_, p), (k, label) in list(self.runs.items())[:4]
            )
            raise ResultsError(
                f"{name}: {len(self.runs)} prompt/provider combinations in one file ({listed}); "
                "the gate compares one prompt revision — run promptfoo with one prompt and one "
                "provider (e.g. --filter-prompts / --filter-providers)"
            )
        graders: list[str | None] = [None] * len(self.ids)
        for k, joined in self.graders.items():
            graders[k] = joined
        table, first_missing = _table(self, graders)
        notes = []
        if self.n_unnamed:
            notes.append(
                f"{name}: {self.n_unnamed} assertion result(s) without their assertion, metric or "
                "type (nothing to name them by) were not read"
            )
        if self.n_errors:
            notes.append(
                f"{name}: {self.n_errors} result(s) ended in an error (promptfoo scored them as "
                "failures)"
            )
        revision = next(iter(self.runs.values()))[1] or None
        return ToolTable(table=table, revision=revision, notes=notes, first_missing=first_missing)


def read_promptfoo(obj: Any, name: str) -> ToolTable:
    """Rows of a promptfoo output file ``name`` (see the module docstring).

    ``obj`` is the file decoded fast (:class:`~analysis.evals._formats.PromptfooDoc`) or parsed by
    ``json``; both give the same table, notes and errors. The loops only collect flat lists
    (one entry per result and per assertion result); the per-metric means and pass flags are
    aggregated by polars.

    Raises:
        ResultsError: No results, several prompts or providers, a missing or duplicated example
            id, a score that is not a number, an assertion metric named like a reserved column.
    """
    results = obj.results if isinstance(obj, PromptfooDoc) else obj["results"]["results"]
    if not results:
        raise ResultsError(f"{name}: results.results[] is empty; re-run the eval")
    with no_gc():  # the loops build many small acyclic objects
        if isinstance(obj, PromptfooDoc):
            test_idx: list[Any] = []
            rows = _Rows(name, test_idx.__getitem__)
            _read_decoded(results, rows, test_idx)
            # the structs are read: free them while the collector is paused (it would walk them)
            obj.results = results = []
        else:
            rows = _Rows(
                name, lambda k: results[k].get("testIdx") if type(results[k]) is dict else None
            )
            _read_parsed(results, rows)
        return rows.finish()


def _read_parsed(results: list[Any], rows: _Rows) -> None:
    """Fill ``rows`` from ``results.results[]`` parsed by ``json`` (plain dicts and lists)."""
    name = rows.name
    empty: dict[str, Any] = {}
    for i, r in enumerate(results):
        if type(r) is not dict:
            raise ResultsError(f"{name}: results.results[{i}] is not an object")
        tc = r.get("testCase")
        if type(tc) is not dict:
            tc = empty
        tvars = tc.get("vars", r.get("vars"))
        asserts = tc.get("assert")
        rows.example(i, _example_id(name, i, r.get("testIdx"), tc, tvars), tvars, asserts)
        rows.run(i, r.get("promptId"), r.get("prompt"), r.get("provider"))
        if r.get("failureReason") == _ERROR:
            rows.n_errors += 1
        grading = r.get("gradingResult")
        if type(grading) is not dict:
            grading = empty
        rows.scores.append(r.get("score", grading.get("score")))
        rows.passes.append(r.get("success", grading.get("pass")))
        found = _options_provider(tc)
        graders = {found} if found else set()
        comps = grading.get("componentResults") or ()
        # a javascript/python assertion that returns a result object has no `assertion` in its
        # component result: it is the test's assertion at the same position
        aligned = type(asserts) is list and len(asserts) == len(comps)
        for j, comp in enumerate(comps):
            if type(comp) is not dict:
                rows.n_unnamed += 1
                continue
            assertion = comp.get("assertion")
            if not assertion and aligned:
                assertion = asserts[j]  # type: ignore[index]
            metric, provider = _assertion_name(assertion)
            if metric is None:
                rows.n_unnamed += 1
                continue
            if provider:
                graders.add(provider)
            rows.c_row.append(i)
            rows.c_metric.append(metric)
            rows.c_score.append(comp.get("score"))
            rows.c_pass.append(bool(comp.get("pass")))
        if graders:
            rows.set_graders(i, graders)


def _key(value: Any) -> Any:
    """``value`` as a dict key: lists and objects as their canonical JSON."""
    return _canonical(value) if isinstance(value, list | dict) else value


def _same(a: Any, b: Any) -> bool:
    """Whether two parsed values, or raw JSON texts (``bytes``) of them, are equal."""
    if a is b or a == b:
        return True
    if type(a) is bytes or type(b) is bytes:
        return bool(_parsed(a) == _parsed(b))
    return False


def _parsed(value: Any) -> Any:
    return decode_json(value) if type(value) is bytes else value


def _raw(value: Any) -> bytes | None:
    """A raw JSON field as ``bytes`` (hashable), ``None`` when the object does not have it."""
    return bytes(value) if value else None


class _Test:
    """A distinct ``testCase`` of a decoded file: its fields decoded once for all the results
    that run it (its repeats)."""

    __slots__ = ("asserts", "eid", "grader", "has_vars", "names", "vars", "view")

    def __init__(self, raw: bytes, names_of: dict[bytes, list[Any] | None]) -> None:
        tc = decode_test(raw)
        self.has_vars = bool(tc.vars)
        self.vars = bytes(tc.vars) if tc.vars else None
        self.asserts = bytes(tc.assert_) if tc.assert_ else None
        # what the example id is made of (``_example_id`` reads no other field)
        self.view: dict[str, Any] = {}
        if tc.description:
            self.view["description"] = decode_json(bytes(tc.description))
        if tc.metadata:
            self.view["metadata"] = decode_json(bytes(tc.metadata))
        self.eid: str | None = None
        self.grader = (
            _options_provider({"options": decode_json(bytes(tc.options))}) if tc.options else None
        )
        # per assertion, its name and grader (a suite's defaultTest ones: decoded once for all)
        self.names: list[tuple[str | None, str | None]] | None = None
        if self.asserts is not None:
            if self.asserts not in names_of:
                parsed = decode_json(self.asserts)
                names_of[self.asserts] = (
                    [_assertion_name(a) for a in parsed] if type(parsed) is list else None
                )
            self.names = names_of[self.asserts]


def _read_decoded(results: list[Any], rows: _Rows, test_idx: list[Any]) -> None:
    """Fill ``rows`` from ``results.results[]`` decoded into ``PfResult`` structs, and
    ``test_idx`` with each result's ``testIdx`` (for messages).

    The same mapping as :func:`_read_parsed`; the test case, the assertions, the prompt and the
    provider stay raw JSON (``bytes``), and each distinct one is decoded once: a test case once
    for all its repeats, the ``defaultTest`` assertions of a suite once for all its tests.
    """
    name = rows.name
    tests: dict[bytes, _Test] = {}
    names_of: dict[bytes, list[Any] | None] = {}
    assertions: dict[bytes, tuple[bool, tuple[str | None, str | None]]] = {}
    joined = rows.joined
    last: tuple[Any, ...] = (object(),)
    count, ids, samples = rows.count, rows.ids, rows.samples
    scores, passes, graders_of = rows.scores, rows.passes, rows.graders
    c_row, c_metric = rows.c_row, rows.c_metric
    c_comps: list[Any] = []  # the PfComp of each named assertion result
    for i, r in enumerate(results):
        test_idx.append(r.testIdx)
        key = bytes(r.testCase)
        test = tests.get(key)
        if test is not None and test.eid is not None:  # a repeat: same id, vars and assertions
            eid = test.eid
            n = count[eid]
            ids.append(eid)
            samples.append(n)
            count[eid] = n + 1
        else:
            if test is None:
                test = tests[key] = _Test(key, names_of)
            # testCase.vars, else the result's own vars (then the id is made for each result)
            tvars = test.vars if test.has_vars else (bytes(r.vars) if r.vars else None)
            eid = _example_id(name, i, r.testIdx, test.view, tvars)
            rows.example(i, eid, tvars, test.asserts)
            if test.has_vars:
                test.eid = eid
        # the prompt's rendered text differs from test to test: with a promptId it is not read
        current = (r.promptId, r.provider) if r.promptId else (r.promptId, r.provider, r.prompt)
        if last != current:
            rows.run(i, r.promptId, _parsed(_raw(r.prompt)), _parsed(_raw(r.provider)))
            last = current
        if r.failureReason == _ERROR:
            rows.n_errors += 1
        grading = r.gradingResult
        score, success = r.score, r.success
        if score is UNSET:
            score = grading.score if grading is not None else None
        if success is UNSET:
            success = grading.passed if grading is not None else None
        scores.append(score)
        passes.append(success)
        graders: set[str] | None = {test.grader} if test.grader else None
        comps = grading.componentResults if grading is not None else None
        if comps:
            names = test.names
            # a javascript/python assertion that returns a result object has no `assertion` in
            # its component result: it is the test's assertion at the same position
            aligned = names is not None and len(names) == len(comps)
            named: tuple[str | None, str | None]
            for j, comp in enumerate(comps):
                raw = comp.assertion
                if raw:
                    akey = bytes(raw)
                    known = assertions.get(akey)
                    if known is None:
                        assertion = decode_json(akey)
                        known = assertions[akey] = (bool(assertion), _assertion_name(assertion))
                    named = known[1] if known[0] or not aligned else names[j]  # type: ignore[index]
                else:
                    named = names[j] if aligned else _UNNAMED  # type: ignore[index]
                metric = named[0]
                if metric is None:
                    rows.n_unnamed += 1
                    continue
                if named[1]:
                    if graders is None:
                        graders = {named[1]}
                    else:
                        graders.add(named[1])
                c_row.append(i)
                c_metric.append(metric)
                c_comps.append(comp)
        if graders:
            gkey = frozenset(graders)
            graders_of[i] = joined.get(gkey) or rows.join(gkey)
    rows.c_score = [comp.score for comp in c_comps]
    rows.c_pass = [bool(comp.passed) for comp in c_comps]


def _label(prompt: Any) -> str:
    """The prompt's label when it is set apart from the prompt text (a revision name)."""
    if type(prompt) is not dict:
        return ""
    label = prompt.get("label")
    if not isinstance(label, str) or not label or label == prompt.get("raw"):
        return ""
    # promptfoo's default label of a prompt file is its path (and text): not a revision name
    return "" if label.startswith("file://") or "\n" in label else label


def _table(rows: _Rows, graders: list[str | None]) -> tuple[pl.DataFrame, dict[str, str]]:
    """The wide table and, per metric some results do not score, the first of them."""
    import polars as pl

    n = len(rows.ids)
    table = pl.DataFrame(
        {
            "example_id": pl.Series(rows.ids, dtype=pl.String),
            "sample": pl.Series(rows.samples, dtype=pl.Int64),
            "score": _floats(rows, None, "score", rows.scores),
            "pass": _floats(rows, None, "success", rows.passes),
        }
    )
    if rows.c_row:
        long = pl.DataFrame(
            {
                "_row": pl.Series(rows.c_row, dtype=pl.Int64),
                "metric": pl.Series(rows.c_metric, dtype=pl.String),
                "value": _floats(
                    rows, rows.c_row, "gradingResult.componentResults[].score", rows.c_score
                ),
                "ok": pl.Series(rows.c_pass, dtype=pl.Boolean),
            }
        )
        bad = long.filter(
            pl.col("metric").is_in(_RESERVED) | pl.col("metric").str.ends_with(".pass")
        )
        if bad.height:
            k, metric = bad.row(0)[:2]
            raise ResultsError(
                f"{rows.name}: {rows.where(k)}: an assertion has metric name {metric!r}, "
                "which collides with a column of the results table (example_id, sample, grader, "
                "score, pass, *.pass); rename its `metric:`"
            )
        table = table.with_columns(_wide(long, n))
    table = table.with_columns(pl.Series("grader", graders, dtype=pl.String))
    first_missing: dict[str, str] = {}
    metric_cols = [c for c in table.columns if c not in ("example_id", "sample", "grader")]
    nulls = table.select(pl.col(c).is_null().arg_max() for c in metric_cols).row(0)
    counts = table.select(pl.col(c).null_count() for c in metric_cols).row(0)
    for col, k, count in zip(metric_cols, nulls, counts, strict=True):
        if count:
            field = {"score": "score", "pass": "success"}.get(col, "gradingResult.componentResults")
            first_missing[col] = f"{rows.where(k)} (field {field})"
    return table, first_missing


def _wide(long: pl.DataFrame, n: int) -> list[pl.Series]:
    """Per metric of the assertion results ``long`` (``_row``, ``metric``, ``value``, ``ok``), in
    first-seen order: ``<metric>``, the mean score of its assertions in each of the ``n``
    results, and ``<metric>.pass``, 1 when all of them passed (null where a result has none)."""
    import polars as pl

    columns: list[pl.Series] = []
    for metric in long.get_column("metric").unique(maintain_order=True).to_list():
        sub = long.filter(pl.col("metric") == metric)
        if sub.get_column("_row").is_duplicated().any():  # assertions of a test share a name
            sub = sub.group_by("_row", maintain_order=True).agg(
                pl.col("value").mean(), pl.col("ok").all()
            )
        at = sub.get_column("_row")
        for name, values in (
            (metric, sub.get_column("value")),
            (f"{metric}.pass", sub.get_column("ok").cast(pl.Float64)),
        ):
            column = pl.repeat(None, n, dtype=pl.Float64, eager=True).alias(name)
            columns.append(column.scatter(at, values))
    return columns


def _floats(rows: _Rows, at: list[int] | None, field: str, values: list[Any]) -> pl.Series:
    """``values`` as Float64; an error names the first result whose value is not a number
    (``at``: the result index of each value, ``None`` when it is the value's own index)."""
    import polars as pl

    try:
        return pl.Series(values, dtype=pl.Float64, strict=True)
    except (TypeError, ValueError, OverflowError, pl.exceptions.PolarsError):
        pass
    fixed: list[float | None] = []
    for n, v in enumerate(values):
        if v is None:
            fixed.append(None)
            continue
        why = "not a number"
        if isinstance(v, bool):
            fixed.append(1.0 if v else 0.0)
            continue
        if isinstance(v, int | float):
            try:
                fixed.append(float(v))
                continue
            except OverflowError:
                why = "a number too large for a score"
        k = n if at is None else at[n]
        shown = repr(v) if len(repr(v)) <= 60 else repr(v)[:57] + "..."
        raise ResultsError(
            f"{rows.name}: {rows.where(k)}: {field} is {shown}, {why}; pass the file promptfoo "
            "wrote, unmodified"
        )
    return pl.Series(fixed, dtype=pl.Float64)
