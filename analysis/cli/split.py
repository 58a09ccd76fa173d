"""``promptstate split``: label every event and print the contamination summary."""

from __future__ import annotations

import argparse
from pathlib import Path

from analysis.cli._common import add_input_options, progress


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "split",
        help="label events by phase and contamination; print the contamination summary",
        description=(
            "Give every event of an experiment its phase and one contamination label "
            "(outside_window, after_end, crossover, served_mismatch, stale_cache, carryover, "
            "prior_conversation, clean) and the unit-level ramp_moved flag, print counts by "
            "phase x arm x label, and optionally write the labelled "
            "events (stderr names the file written). Pass EVENTS with --ledger; with neither it "
            "runs on the embedded sample. "
            "Exit codes: 0 ok, 2 bad input (nothing written), 4 internal error."
        ),
    )
    add_input_options(
        parser,
        metrics=False,
        out_help="write the labelled events (the export's columns plus phase, served_revision "
        "and contamination) to this .parquet, .csv or .ndjson file",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Split, optionally write the labelled events, print the summary.

    JSON shape (``--format json``): ``{"schema_version": 1, "experiment": id, "phases": [...],
    "load": {...}, "summary": {...}}`` — the phases (``SplitResult.phase_table()``), the load
    report (``LoadReport.to_dict()``) and the contamination summary
    (``ContaminationSummary.to_dict()``).
    """
    import sys

    from analysis._paths import check_outputs
    from analysis.cli._common import json_output, resolve_inputs, write_output
    from analysis.errors import PromptstateError
    from analysis.events.labelling import contamination_summary, split

    inputs = resolve_inputs(args)
    if args.out is not None:
        if args.out.suffix.lower() not in (".parquet", ".csv", ".ndjson"):
            raise PromptstateError(f"--out {args.out}: use a .parquet, .csv or .ndjson file name")
        check_outputs([args.out], inputs.paths())
    with progress("loading and validating events", enabled=args.progress):
        result = split(
            inputs.events_path, inputs.ledger_path, inputs.experiment, columns=inputs.columns
        )
    if args.out is not None:
        _check_writable(result.frame, args.out)
        from analysis._io import atomic_write_with

        with progress(f"labelling and writing {args.out}", enabled=args.progress):
            try:
                atomic_write_with(args.out, lambda tmp: _write(result.frame, tmp, args.out.suffix))
            except OSError as exc:
                raise PromptstateError(
                    f"--out {args.out}: cannot write ({exc.strerror or exc}); choose a writable "
                    "path (nothing was written)"
                ) from None
        print(
            f"promptstate: wrote {result.load_report.n_events} labelled events of experiment "
            f"{result.experiment.id} to {args.out}",
            file=sys.stderr,
        )
    with progress("summarising", enabled=args.progress):
        summary = contamination_summary(result)
    if args.format == "json":
        payload = {
            "experiment": result.experiment.id,
            "phases": result.phase_table(),
            "load": _unversioned(result.load_report.to_dict()),
            "summary": _unversioned(summary.to_dict()),
        }
        write_output(json_output(payload))
    elif args.format == "markdown":
        write_output(summary.to_markdown())
    else:
        write_output(str(summary))
    return 0


def _unversioned(obj: dict[str, object]) -> dict[str, object]:
    """A nested object without its own ``schema_version`` (the output's first key says it)."""
    return {k: v for k, v in obj.items() if k != "schema_version"}


def _check_writable(frame: object, out: Path) -> None:
    """CSV holds no nested values: refuse list/struct columns before anything is written."""
    import narwhals as nw

    from analysis.errors import PromptstateError

    assert isinstance(frame, nw.LazyFrame)
    if out.suffix.lower() != ".csv":
        return
    schema = frame.collect_schema()
    nested = [name for name, dtype in schema.items() if dtype.is_nested()]
    if nested:
        raise PromptstateError(
            f"--out {out}: column(s) {', '.join(nested)} hold lists or structs, which CSV cannot "
            "store; write .parquet or .ndjson instead"
        )


def _write(frame: object, path: Path, suffix: str) -> None:
    import narwhals as nw

    assert isinstance(frame, nw.LazyFrame)
    native = frame.to_native()
    if frame.implementation.is_polars():
        suffix = suffix.lower()
        if suffix == ".parquet":
            native.sink_parquet(path)
        elif suffix == ".csv":
            native.sink_csv(path)
        else:
            native.sink_ndjson(path)
        return
    eager = frame.collect()
    if suffix == ".parquet":
        eager.write_parquet(path)
    elif suffix == ".csv":
        eager.write_csv(path)
    else:
        eager.to_polars().write_ndjson(path)
