"""Paths: where the embedded sample lives, and output paths that stay where they belong.

:func:`safe_join` builds an output path from a name taken from user data (a prompt id) so that it
stays under its root; :func:`check_outputs` refuses to write an output onto an input.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from analysis.errors import PromptstateError

__all__ = [
    "check_outputs",
    "safe_join",
    "safe_name",
    "sample_dir",
    "sample_path",
    "sample_store",
]


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


# ------------------------------------------------------------------------------ safe paths

_SAFE_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")
_MAX_NAME = 120


def safe_name(name: str) -> str:
    """``name`` made safe as one path component: no separators, no ``..``, no leading dot.

    Characters other than ASCII letters, digits, ``.``, ``_`` and ``-`` become ``_``; a name that
    had to change gets a short hash of the original appended, so two different names never map
    to the same component.

    >>> safe_name("support-assistant")
    'support-assistant'
    >>> safe_name("/../../etc/x").startswith("_.._.._etc_x-")
    True
    """
    import hashlib

    cleaned = "".join(ch if ch in _SAFE_CHARS else "_" for ch in name).lstrip(".")
    cleaned = cleaned[:_MAX_NAME]
    if cleaned == name and cleaned not in ("", ".", ".."):
        return cleaned
    digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    return f"{cleaned or '_'}-{digest}"


def safe_join(root: str | Path, *names: str) -> Path:
    """``root / safe_name(n1) / safe_name(n2) ...``, checked to stay under ``root``.

    Raises:
        PromptstateError: the joined path resolves outside ``root`` (a symbolic link inside
            ``root`` pointing out of it).
    """
    base = Path(root)
    path = base.joinpath(*(safe_name(n) for n in names))
    if not _is_under(path, base):
        raise PromptstateError(
            f"{path}: resolves outside {base} (a symbolic link?); write somewhere else with --out"
        )
    return path


def _is_under(path: Path, root: Path) -> bool:
    return path.resolve().is_relative_to(root.resolve())


def _input_parts(source: str | Path) -> tuple[set[Path], set[Path], list[str]]:
    """Files, directories and glob patterns (absolute) that an input path stands for."""
    import glob

    text = str(source)
    if any(ch in text for ch in "*?["):
        pattern = str(Path(text).expanduser().absolute())
        files = {Path(p).resolve() for p in glob.glob(text, recursive=True)}
        return files, set(), [pattern]
    path = Path(text).expanduser()
    if path.is_dir():
        return set(), {path.resolve()}, []
    return {path.resolve()}, set(), []


def check_outputs(
    outputs: Sequence[str | Path],
    inputs: Sequence[object],
    *,
    option: str = "--out",
) -> None:
    """Refuse to write an output onto an input, or into an input directory or glob.

    ``outputs`` are the files a command is about to write (existing or not); ``inputs`` the
    paths it reads (files, directories, globs; ``None`` and in-memory objects are skipped).
    Writing into an input directory is refused too: the next read would take the output for
    part of the input.

    Raises:
        PromptstateError: naming the option, the output and the input it would overwrite.
    """
    import fnmatch

    files: set[Path] = set()
    dirs: set[Path] = set()
    patterns: list[str] = []
    for source in inputs:
        if not isinstance(source, str | Path):
            continue
        f, d, p = _input_parts(source)
        files |= f
        dirs |= d
        patterns += p
    for out in outputs:
        target = Path(out).expanduser().resolve()
        clash = None
        if target in files:
            clash = f"it is an input ({target})"
        elif any(target.is_relative_to(d) for d in dirs):
            where = next(d for d in dirs if target.is_relative_to(d))
            clash = f"it lies inside the input directory {where}"
        elif any(fnmatch.fnmatch(str(target), p) for p in patterns):
            clash = "it matches the input pattern " + next(
                p for p in patterns if fnmatch.fnmatch(str(target), p)
            )
        if clash is not None:
            raise PromptstateError(
                f"{option} {out}: would overwrite what this command reads — {clash}; write the "
                "output somewhere else (nothing was written)"
            )
