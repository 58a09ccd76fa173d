"""Helpers shared by the subcommands: inputs, output formats, progress on stderr, column maps.

:func:`add_input_options` and :func:`resolve_inputs` give ``split``, ``analyze`` and ``report``
the same inputs: ``EVENTS`` (positional, or ``--events``), ``--ledger``, ``--experiment``,
``--metrics``, ``--column``/``--columns``, ``--format``, ``--out`` and ``--progress``. With
neither ``EVENTS`` nor ``--ledger`` a command runs on the embedded sample (its events, ledger,
``metrics.yaml`` and baseline store); one without the other is bad input (exit 2). On a user's
export the metrics are the ``--metrics`` file's, checked against the export's schema before
anything is scanned, or else inferred from the schema (:func:`resolve_metrics`) — never the
sample's. The options ``analyze`` and ``report`` share (the clock, ``--state``, ``--mde``,
``--sequential``/``--planned-units``, ``--segment``, ``--moved-units``) are defined here once,
with :func:`check_decision_options` and :func:`settle_alerts`.
"""

from __future__ import annotations

import argparse
import math
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:  # pragma: no cover
    from analysis.ledger import Ledger
    from analysis.metrics.definitions import Metric

__all__ = [
    "FORMATS",
    "Inputs",
    "add_clock_options",
    "add_columns_option",
    "add_decision_options",
    "add_format_option",
    "add_input_options",
    "add_moved_units_option",
    "add_progress_option",
    "add_segment_option",
    "add_sequential_options",
    "add_state_options",
    "check_decision_options",
    "command_context",
    "json_output",
    "number",
    "parse_columns",
    "progress",
    "resolve_inputs",
    "resolve_metrics",
    "sequential_options",
    "settle_alerts",
    "write_output",
]

FORMATS = ("table", "json", "markdown")


def add_format_option(parser: argparse.ArgumentParser, formats: tuple[str, ...] = FORMATS) -> None:
    """Add ``--format`` with the given choices (first is the default)."""
    parser.add_argument(
        "--format",
        choices=formats,
        default=formats[0],
        help=f"output format (default: {formats[0]})",
    )


def add_progress_option(parser: argparse.ArgumentParser) -> None:
    """Add ``--progress/--no-progress`` (default: progress when stderr is a terminal)."""
    parser.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="show progress on stderr (default: when stderr is a terminal)",
    )


def add_columns_option(parser: argparse.ArgumentParser) -> None:
    """Add ``--column CANONICAL=YOURS[,...]`` (repeatable) and ``--columns FILE`` (YAML/JSON)."""
    parser.add_argument(
        "--column",
        action="append",
        default=[],
        metavar="CANONICAL=YOURS",
        help="map a canonical column to the export's name, e.g. user_id=account; repeat the "
        "flag or give a comma-separated list (user_id=account,ts=time); user_id names the "
        "unit column whatever the ledger's unit is called",
    )
    parser.add_argument(
        "--columns",
        type=Path,
        metavar="FILE",
        help="YAML or JSON file mapping canonical column names to the export's names",
    )


def parse_columns(args: argparse.Namespace) -> dict[str, str]:
    """Read the column map given by ``--columns FILE`` and ``--column A=B`` (the latter wins).

    Each ``--column`` is one pair or a comma-separated list of pairs (``user_id=account,ts=time``);
    a canonical name given twice with different columns is refused.
    """
    from analysis.errors import PromptstateError

    mapping: dict[str, str] = {}
    if getattr(args, "columns", None) is not None:
        from analysis import _yaml

        path: Path = args.columns
        data = _yaml.load(path, what="column map", error=PromptstateError)
        if not isinstance(data, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in data.items()
        ):
            raise PromptstateError(
                f"{path}: the column map must be a mapping canonical_name: your_column_name"
            )
        mapping.update(data)
    given: dict[str, str] = {}
    for item in getattr(args, "column", []) or []:
        for pair in item.split(","):
            key, sep, value = (part.strip() for part in pair.partition("="))
            if not sep or not key or not value:
                raise PromptstateError(
                    f"--column {item!r}: expected CANONICAL=YOURS pairs, one per flag or "
                    "comma-separated, e.g. --column user_id=account,ts=time"
                )
            if given.get(key, value) != value:
                raise PromptstateError(
                    f"--column {item!r}: {key!r} is mapped twice ({given[key]!r} and "
                    f"{value!r}); give one column for it"
                )
            given[key] = value
    mapping.update(given)
    return mapping


def add_input_options(
    parser: argparse.ArgumentParser,
    *,
    out_help: str,
    out_metavar: str = "FILE",
    out_default: Path | None = None,
    formats: tuple[str, ...] = FORMATS,
    format_help: str | None = None,
    metrics: bool = True,
) -> None:
    """Add the inputs shared by ``split``, ``analyze`` and ``report``.

    ``EVENTS`` (positional; ``--events`` is an alias), ``--ledger``, ``--experiment``,
    ``--metrics`` (when ``metrics``), ``--column``/``--columns``, ``--format`` (choices
    ``formats``, the first the default), ``--out`` and ``--progress``. Read them back with
    :func:`resolve_inputs`.
    """
    parser.add_argument(
        "events",
        nargs="?",
        metavar="EVENTS",
        help="event export: Parquet/CSV/NDJSON file, directory or glob; needs --ledger (leave "
        "out both for the embedded sample)",
    )
    parser.add_argument(
        "--events",
        dest="events_option",
        metavar="EVENTS",
        help="the event export, as an option (the same as the EVENTS argument)",
    )
    parser.add_argument(
        "--ledger",
        type=Path,
        metavar="FILE",
        help="rollout ledger (YAML/JSON, docs/ledger.md); needed with EVENTS",
    )
    parser.add_argument(
        "--experiment", metavar="ID", help="experiment id (default: the only one in the export)"
    )
    if metrics:
        parser.add_argument(
            "--metrics",
            type=Path,
            metavar="FILE",
            help="metrics file (YAML/JSON, docs/metrics.md); default: the sample's metrics.yaml "
            "on the sample, and on your export metrics inferred from its column types (a note "
            "on stderr names them)",
        )
    add_columns_option(parser)
    parser.add_argument(
        "--format",
        choices=formats,
        default=formats[0],
        help=format_help or f"output format on stdout (default: {formats[0]})",
    )
    parser.add_argument("--out", type=Path, metavar=out_metavar, default=out_default, help=out_help)
    add_progress_option(parser)


def add_window_options(parser: argparse.ArgumentParser, *, completeness_switch: bool) -> None:
    """``--since/--until`` and the completeness checks' options (``analyze``, ``report``)."""
    parser.add_argument(
        "--since",
        metavar="T",
        help="analyse events at or after T (ISO-8601); without --experiment, every experiment "
        "whose exposure overlaps [--since, --until) is covered",
    )
    parser.add_argument(
        "--until",
        metavar="T",
        help="analyse events before T (ISO-8601; default: the newest event of the export)",
    )
    parser.add_argument(
        "--late-hours",
        type=number(low=0),
        default=2.0,
        metavar="H",
        help="leave out the last H hours before --until as late data, and say how many events "
        "(default: 2)",
    )
    parser.add_argument(
        "--gap-hours",
        type=number(low=0, low_open=True),
        default=1.0,
        metavar="H",
        help="completeness: alert on a run of at least H hours without events inside a phase "
        "window, overall or for one arm (default: 1)",
    )
    parser.add_argument(
        "--drop-threshold",
        type=number(low=0, high=1, low_open=True, high_open=True),
        default=0.3,
        metavar="S",
        help="completeness: alert when an arm's newly enrolled units on a day fall more than "
        "this share below what the allocation and the other arms imply (default: 0.3)",
    )
    parser.add_argument(
        "--completeness-alpha",
        type=number(low=0, high=1, low_open=True, high_open=True),
        default=0.001,
        metavar="A",
        help="completeness: level of the binomial test behind a volume alert, Bonferroni "
        "over the days and arms (default: 0.001)",
    )
    if completeness_switch:
        parser.add_argument(
            "--no-completeness",
            action="store_true",
            help="skip the completeness and freshness checks (late data is still left out)",
        )


def window_options(args: argparse.Namespace) -> dict[str, Any]:
    """The API keyword arguments of :func:`add_window_options`' flags."""
    out: dict[str, Any] = {
        "since": args.since,
        "until": args.until,
        "late_hours": args.late_hours,
        "gap_hours": args.gap_hours,
        "drop_threshold": args.drop_threshold,
        "completeness_alpha": args.completeness_alpha,
    }
    if getattr(args, "no_completeness", False):
        out["completeness"] = False
    return out


# -- options shared by analyze and report ---------------------------------------------------------


def add_clock_options(parser: argparse.ArgumentParser) -> None:
    """``--fresh-hours`` and ``--now``: when late data is left out (``analyze``, ``report``)."""
    parser.add_argument(
        "--fresh-hours",
        type=number(low=0),
        default=24.0,
        metavar="H",
        help="leave out --late-hours of late data only when the window's end is within H hours "
        "of the run time (default: 24); an older window is complete: nothing is left out, and "
        "a note says so",
    )
    parser.add_argument(
        "--now",
        type=timestamp,
        metavar="T",
        help="the run time --fresh-hours is measured from (ISO-8601 with a timezone; default: "
        "the clock), e.g. to reproduce a past run",
    )


def add_decision_options(parser: argparse.ArgumentParser) -> None:
    """``--state``, ``--repeat-alerts`` (:func:`add_state_options`) and ``--mde``."""
    add_state_options(parser)
    parser.add_argument(
        "--mde",
        metavar="EFFECT",
        type=effect_size,
        help="planned minimum detectable effect of the primary metrics, absolute or a percent of "
        "the control value ('5%%'): the recommendation ramps or promotes only once every "
        "primary metric can detect it (default: planned power unknown, recommend continue)",
    )


def add_state_options(parser: argparse.ArgumentParser) -> None:
    """``--state`` and ``--repeat-alerts`` (``analyze``, ``report``)."""
    parser.add_argument(
        "--state",
        type=Path,
        metavar="PATH",
        help="alert state file (JSON, created when missing): an alert an earlier run already "
        "raised is reported as known and does not by itself exit 1; a cleared alert is "
        "reported once (docs/decisions.md)",
    )
    parser.add_argument(
        "--repeat-alerts",
        action="store_true",
        help="with --state: exit 1 on known alerts too (they are still reported as known)",
    )


def check_decision_options(args: argparse.Namespace) -> None:
    """Fail early (exit 2) on a bad ``--mde`` or a corrupt ``--state`` file, before any scan."""
    from analysis.decisions.alert_state import read_state
    from analysis.decisions.recommendation import check_mde
    from analysis.errors import PromptstateError

    check_mde(getattr(args, "mde", None))
    if getattr(args, "sequential", False) and getattr(args, "planned_units", None) is None:
        raise PromptstateError(
            "--sequential needs --planned-units N: the units (all arms) the experiment is "
            "planned to reach, fixed before the first look (docs/decisions.md)"
        )
    if args.state is not None:
        read_state(args.state)


def command_context(inputs: Any) -> Any:
    """The paths the recommendation's commands name (as given on the command line)."""
    from analysis.decisions import CommandContext

    if inputs.sample:
        return CommandContext()
    return CommandContext(
        events=str(inputs.events) if inputs.events is not None else None,
        ledger=str(inputs.ledger) if inputs.ledger is not None else None,
        metrics=str(inputs.metrics) if inputs.metrics is not None else None,
    )


def settle_alerts(
    args: argparse.Namespace, items: list[Any], experiments: list[str], base_code: int
) -> tuple[int, Any]:
    """The exit code and the ``--state`` update (``None`` without ``--state``).

    Without ``--state``: ``base_code``. With it, the state file is updated (under its lock) and
    alerts exit 1 only when new (or with ``--repeat-alerts``); codes other than 1 in
    ``base_code`` (2, 4) stay. Every exit-1 cause of ``analyze`` and ``report`` is an alert.
    """
    from analysis.decisions import update_state
    from analysis.errors import worst_exit

    if args.state is None:
        return base_code, None
    update = update_state(args.state, items, experiments=experiments, now=args.now)
    rest = 0 if base_code == 1 else base_code
    return worst_exit(rest, update.exit_code(repeat=args.repeat_alerts)), update


def add_segment_option(parser: argparse.ArgumentParser) -> None:
    """``--segment COLUMN`` (repeatable): clean effects per value of a unit attribute
    (``analyze``, ``report``)."""
    parser.add_argument(
        "--segment",
        action="append",
        dest="segments",
        metavar="COLUMN",
        default=None,
        help="also report the clean effects per value of this unit attribute, fixed at each "
        "unit's first exposure (repeatable: each column on its own, not crossed; values with "
        "< 200 units per arm pooled into 'other'; Benjamini-Hochberg across values; Cochran's "
        "test that the effect differs between values)",
    )


def add_moved_units_option(parser: argparse.ArgumentParser) -> None:
    """``--moved-units``: what the clean estimates do with ramp-moved units (``analyze``,
    ``report``)."""
    parser.add_argument(
        "--moved-units",
        choices=("keep", "exclude"),
        default="keep",
        help="units a ramp moved from a shrinking to a growing arm: keep them, each phase in the "
        "arm it had then (default), or exclude them as crossover (the estimates before 0.3)",
    )


def add_sequential_options(parser: argparse.ArgumentParser) -> None:
    """``--sequential`` and ``--planned-units`` (``analyze``, ``report``); checked together by
    :func:`check_decision_options`, passed on by :func:`sequential_options`."""
    parser.add_argument(
        "--sequential",
        action="store_true",
        help="monitoring that allows peeking: regressions, guardrail verdicts and SRM decided "
        "with always-valid inference (confidence sequences cs_lower/cs_upper, "
        "pvalue_sequential), valid however often the job runs; needs --planned-units "
        "(docs/decisions.md)",
    )
    parser.add_argument(
        "--planned-units",
        type=number(low=0, low_open=True),
        default=None,
        metavar="N",
        help="with --sequential: the units (all arms) the experiment is planned to reach, "
        "fixed before the first look; the confidence sequences are tightest there",
    )


def sequential_options(args: argparse.Namespace) -> dict[str, Any]:
    """The API keyword arguments of :func:`add_sequential_options`' flags."""
    return {"sequential": args.sequential, "planned_units": args.planned_units}


class Inputs(NamedTuple):
    """The inputs of ``split``, ``analyze`` or ``report`` (:func:`resolve_inputs`).

    Attributes:
        events: The export as given (``None``: the embedded sample).
        ledger: The ledger file (``None``: the embedded sample).
        experiment: The experiment id, if given.
        metrics: The ``--metrics`` file, if given.
        columns: The column map (canonical → the export's name).
        columns_file: The ``--columns`` file, if given.
        sample: Whether the command runs on the embedded sample.
    """

    events: str | None
    ledger: Path | None
    experiment: str | None
    metrics: Path | None
    columns: dict[str, str]
    columns_file: Path | None
    sample: bool

    @property
    def events_path(self) -> str | Path:
        """The export to read (the sample's when none was given)."""
        from analysis._paths import sample_path

        return self.events if self.events is not None else sample_path("events.parquet")

    @property
    def ledger_path(self) -> Path:
        """The ledger to read (the sample's when none was given)."""
        from analysis._paths import sample_path

        return self.ledger if self.ledger is not None else sample_path("ledger.yaml")

    def paths(self) -> list[object]:
        """Every path the command reads (for :func:`analysis._paths.check_outputs`), the
        sample's directory included on the sample."""
        from analysis._paths import sample_dir

        sample = sample_dir() if self.sample else None
        return [self.events, self.ledger, self.metrics, self.columns_file, sample]


def resolve_inputs(args: argparse.Namespace) -> Inputs:
    """The inputs given by :func:`add_input_options`'s options, checked against each other.

    Raises:
        PromptstateError: EVENTS without ``--ledger`` or the reverse (exit 2, naming the
            missing one), or EVENTS given twice.
    """
    from analysis.errors import PromptstateError

    command = str(getattr(args, "command", "") or "")
    events = args.events
    alias = getattr(args, "events_option", None)
    if events is not None and alias is not None and events != alias:
        raise PromptstateError(
            f"EVENTS {events!r} and --events {alias!r}: give the event export once"
        )
    events = events if events is not None else alias
    if events is not None and args.ledger is None:
        raise PromptstateError(
            f"{events}: pass the rollout ledger with --ledger FILE (promptstate {command} "
            "EVENTS --ledger FILE); leave out both for the embedded sample"
        )
    if events is None and args.ledger is not None:
        raise PromptstateError(
            f"--ledger {args.ledger}: pass the event export too (promptstate {command} EVENTS "
            "--ledger FILE); leave out both for the embedded sample"
        )
    return Inputs(
        events=events,
        ledger=args.ledger,
        experiment=args.experiment,
        metrics=getattr(args, "metrics", None),
        columns=parse_columns(args),
        columns_file=getattr(args, "columns", None),
        sample=events is None,
    )


def resolve_metrics(inputs: Inputs) -> tuple[tuple[Metric, ...], str | None]:
    """The metrics of a run and the inference note (``None`` unless metrics were inferred).

    Reads the export's schema only (Parquet footers; for CSV/NDJSON the opening checks of
    :mod:`analysis.events._sources`, which read each line once — loading repeats them) — the
    events are not scanned: a ``--metrics`` file naming a column the export lacks, or a
    non-numeric one, fails at once. On the sample with no ``--metrics``: the sample's
    ``metrics.yaml``; on a user's export with none: metrics inferred from the column types
    (:func:`analysis.metrics.infer_metrics`), never the sample's.

    Raises:
        PromptstateError: naming the metrics file, the metric and ``--metrics``; or no column
            of the export can be a metric (naming ``--metrics``).
    """
    from analysis._paths import sample_path
    from analysis.ledger import load_ledger
    from analysis.metrics._inference import (
        check_metric_columns,
        infer_metrics,
        partition_columns,
        reserved_columns,
    )
    from analysis.metrics.definitions import load_metrics

    ledger = load_ledger(inputs.ledger_path)
    if inputs.experiment is not None:
        units = [ledger.experiment(inputs.experiment).unit]
    else:
        units = sorted({e.unit for e in ledger.experiments.values()})
    schema = _export_schema(inputs.events_path, inputs.columns, ledger, inputs.experiment)
    file = inputs.metrics
    if file is None and inputs.sample:
        file = sample_path("metrics.yaml")
    if file is None:
        partitions = partition_columns(inputs.events_path)
        inferred = infer_metrics(
            schema, ids=units, exclude=dict.fromkeys(partitions, "partition column")
        )
        return inferred.metrics, inferred.note
    metrics = load_metrics(file)
    reserved = set().union(*(reserved_columns(u) for u in units))
    check_metric_columns(
        metrics,
        schema,
        where=str(file),
        reserved=reserved,
        source=f"the export {inputs.events_path}",
        hint="pass a metrics file that names the export's columns with --metrics FILE",
    )
    return metrics, None


def _export_schema(
    source: str | Path, columns: dict[str, str], ledger: Ledger, experiment: str | None
) -> dict[str, Any]:
    """The export's columns and types under their canonical names, from its schema alone.

    The unit column keeps the ledger's name for it (a map ``user_id=acct`` renames ``acct`` to
    the unit, e.g. ``account``), as loading does (:func:`analysis.events.loading.load_events`).
    """
    from analysis.events.loading import _open, _rename, default_unit, unit_column_map

    frame, _kind, where, _text = _open(source)
    if experiment is not None:
        unit = ledger.experiment(experiment).unit
    else:
        unit = default_unit(ledger, (*frame.collect_schema().names(), *columns))
    frame, _renamed = _rename(frame, unit_column_map(columns, unit), where)
    return dict(frame.collect_schema())


def effect_size(text: str) -> float | str:
    """An ``--mde`` value: a number (absolute, in the metric's unit) or a percent string kept
    as given (``"5%"``); checked by :func:`analysis.metrics.definitions.parse_margin`."""
    try:
        return float(text)
    except ValueError:
        return text


def json_output(payload: dict[str, Any]) -> str:
    """``payload`` as indented JSON with ``"schema_version"`` as its first key."""
    import json

    from analysis.errors import SCHEMA_VERSION

    rest = {k: v for k, v in payload.items() if k != "schema_version"}
    return json.dumps({"schema_version": SCHEMA_VERSION, **rest}, indent=2, default=str)


def timestamp(text: str) -> datetime:
    """argparse type: an ISO 8601 instant with a timezone (anything else exits 2)."""
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an ISO 8601 time, e.g. 2026-11-03T08:15:00Z"
        ) from None
    if value.tzinfo is None or value.utcoffset() is None:
        raise argparse.ArgumentTypeError(
            f"{text!r} has no timezone; write it in UTC with a trailing Z"
        )
    return value


def number(
    *,
    integer: bool = False,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
) -> Callable[[str], float]:
    """An argparse ``type=`` that parses a finite number in a range, e.g. ``(0, 1)``.

    NaN, infinities and values outside ``[low, high]`` (bounds excluded with ``low_open`` /
    ``high_open``) are refused with a message naming the range; argparse then exits with
    code 2.

    >>> number(low=0, high=1, low_open=True, high_open=True)("0.05")
    0.05
    """
    lo = "(" if low_open else "["
    hi = ")" if high_open else "]"
    span = f"{lo}{'-inf' if low is None else low}, {'inf' if high is None else high}{hi}"
    kind = "a whole number" if integer else "a number"

    def parse(text: str) -> float:
        try:
            value = float(int(text)) if integer else float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {kind} in {span}") from None
        bad = not math.isfinite(value)
        bad = bad or (low is not None and (value < low or (low_open and value == low)))
        bad = bad or (high is not None and (value > high or (high_open and value == high)))
        if bad:
            raise argparse.ArgumentTypeError(f"{text!r} must be {kind} in {span}")
        return int(value) if integer else value

    return parse


def write_output(text: str, out: Path | None = None) -> None:
    """Print ``text`` to stdout, or write it atomically to ``out``."""
    if out is None:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
        return
    from analysis._io import atomic_write_text

    atomic_write_text(out, text if text.endswith("\n") else text + "\n")


@contextmanager
def progress(label: str, *, enabled: bool | None = None) -> Iterator[None]:
    """Show ``label`` with a spinner and elapsed seconds on stderr while the block runs.

    Shown only when stderr is a terminal (or ``enabled=True``); a final line reports the time.
    """
    show = sys.stderr.isatty() if enabled is None else enabled
    if not show:
        yield
        return
    done = threading.Event()
    start = time.perf_counter()

    def spin() -> None:
        frames = "|/-\\"
        i = 0
        while not done.wait(0.2):
            elapsed = time.perf_counter() - start
            sys.stderr.write(f"\r{frames[i % 4]} {label} ... {elapsed:5.1f}s")
            sys.stderr.flush()
            i += 1

    thread = threading.Thread(target=spin, daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()
        sys.stderr.write(f"\r  {label} done in {time.perf_counter() - start:.1f}s\n")
        sys.stderr.flush()
