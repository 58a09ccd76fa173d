"""Where the embedded sample lives, for commands run with no arguments."""

from __future__ import annotations

from pathlib import Path

from analysis.errors import PromptstateError

__all__ = ["sample_dir", "sample_path", "sample_store"]


def sample_dir() -> Path:
    """Return the ``data_samples/`` directory of the embedded sample.

    Looked up, in order: next to the package in a source checkout (editable install), inside the
    installed wheel (``analysis/_data_samples``), then ``./data_samples`` in the working directory.
    """
    here = Path(__file__).resolve().parent
    for candidate in (
        here.parent / "data_samples",
        here / "_data_samples",
        Path.cwd() / "data_samples",
    ):
        if (candidate / "ledger.yaml").is_file():
            return candidate
    raise PromptstateError(
        "the embedded sample was not found (looked for data_samples/ledger.yaml next to the "
        "package and in the working directory); pass the events and --ledger explicitly"
    )


def sample_path(name: str) -> Path:
    """Return the path of one file of the embedded sample, e.g. ``events.parquet``."""
    return sample_dir() / name


def sample_store() -> Path | None:
    """The embedded sample's eval-baseline store, or ``None`` when it is not installed.

    ``baselines/`` next to ``data_samples/`` in a source checkout; ``analysis/_sample_baselines``
    inside an installed wheel.
    """
    here = Path(__file__).resolve().parent
    for candidate in (sample_dir().parent / "baselines", here / "_sample_baselines"):
        if candidate.is_dir() and any(candidate.iterdir()):
            return candidate
    return None
