"""Prototype: spell out the ``contamination`` label with a ``when`` chain, not ``replace_strict``.

``analysis.events.labelling._label`` computes the label as an Int8 code (``__code``) and spells
it out with ``nw.col("__code").replace_strict(codes, LABELS, return_dtype=String)``. In a
streaming ``sink_parquet`` (``labelling.materialized``) that one column holds memory in
proportion to the rows on polars 2.1: on 6.0M events the sink of the export's columns peaks
at 1.16 GB without it, 1.88 GB with it, 1.19 GB with this ``when`` chain
(``probe_sink.py``); on 20M events the whole sink peaks at 6.56 GB
(``profile_collects.py``). ``analysis.events._lookup._lookup`` already prefers ``when``
chains for short maps. Executed by ``bench_e2e.py --patch`` (nothing in the package is edited).
"""

from __future__ import annotations

from typing import Any

import narwhals as nw

from analysis.events import labelling

_original = labelling._label


def spelled(code: nw.Expr) -> nw.Expr:
    """The label of an Int8 code (index in ``LABELS``) as text, by a ``when`` chain."""
    out: nw.Expr = nw.lit(None, dtype=nw.String)
    for i in reversed(range(len(labelling.LABELS))):
        out = (
            nw.when(code == nw.lit(i, dtype=nw.Int8))
            .then(nw.lit(labelling.LABELS[i]))
            .otherwise(out)
        )
    return out


def _label(*args: Any, **kwargs: Any) -> Any:
    frame, checks, unit_key, conv_key = _original(*args, **kwargs)
    names = frame.collect_schema().names()
    frame = frame.drop("contamination").with_columns(
        spelled(nw.col("__code")).alias("contamination")
    )
    return frame.select(names), checks, unit_key, conv_key


labelling._label = _label
