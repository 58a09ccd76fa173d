"""Which baseline store a command uses: one rule for every store command.

The store is found, first match wins:

1. the ``--store`` flag (``flag``);
2. the environment variable ``PROMPTSTATE_STORE`` (when set and not empty);
3. ``store = "..."`` under ``[tool.promptstate]`` in the nearest ``pyproject.toml`` that has a
   ``[tool.promptstate]`` table, walking up from the working directory (a relative path is
   relative to that ``pyproject.toml``'s folder);
4. ``./baselines`` when it is an existing directory.

With none of these, :class:`StoreNotFoundError` (exit code 2) names all four. A store that was
found must be a folder (:func:`check_store_dir`; ``baseline init`` may create it). The embedded
sample's store (``baselines/`` of a source checkout, ``analysis/_sample_baselines`` in a wheel)
is read-only: every writer refuses it, however it was named (:func:`check_writable`). It is
recognised by its resolved path, so a copy of it (the tests', or one made to replay the sample
story) is an ordinary, writable store.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import NamedTuple

from analysis.errors import BaselineError

__all__ = [
    "ENV_VAR",
    "SAMPLE_ADVICE",
    "StoreLocation",
    "StoreNotFoundError",
    "check_store_dir",
    "check_writable",
    "is_sample_store",
    "locate_store",
]

#: Environment variable naming the store (rule 2).
ENV_VAR = "PROMPTSTATE_STORE"

#: What to do instead of writing to the read-only sample store (no path of the sample in it).
SAMPLE_ADVICE = (
    "make a store of your own with `promptstate baseline init SUITE --store PATH --config "
    "suite.yaml` (or copy the sample store elsewhere) and name it with --store PATH, "
    'PROMPTSTATE_STORE=PATH or `store = "PATH"` under [tool.promptstate] in pyproject.toml'
)

_WAYS = (
    'pass --store DIR, set PROMPTSTATE_STORE=DIR, add `store = "DIR"` under '
    "[tool.promptstate] in pyproject.toml, or run where ./baselines exists"
)


class StoreLocation(NamedTuple):
    """The baseline store a command uses, and the rule that chose it.

    Attributes:
        path: The store's directory (absolute; it may not exist yet for ``baseline init``).
        source: ``"--store"``, ``"PROMPTSTATE_STORE"``, ``"pyproject.toml (<path>)"`` or
            ``"./baselines"`` — the rule that chose ``path``; ``"sample"`` for the embedded
            sample's store used by a no-argument demo.
    """

    path: Path
    source: str

    def describe(self) -> str:
        """One line naming the store and where it came from, e.g. for stderr."""
        return f"store {self.path} (from {self.source})"


class StoreNotFoundError(BaselineError):
    """No baseline store was named and ``./baselines`` does not exist (exit code 2)."""


def locate_store(flag: str | Path | None = None, *, cwd: Path | None = None) -> StoreLocation:
    """Find the baseline store: ``--store``, ``PROMPTSTATE_STORE``, pyproject, ``./baselines``.

    Args:
        flag: The ``--store`` value, or ``None`` when it was not given.
        cwd: The directory to start from (default: the working directory); relative ``flag``
            and ``PROMPTSTATE_STORE`` values are taken relative to it.

    Returns:
        The store's absolute path and the rule that chose it.

    Raises:
        StoreNotFoundError: no rule applies (the message names all four ways).
        BaselineError: the nearest ``[tool.promptstate]`` is not valid TOML or its ``store`` is
            not a non-empty string (exit code 2, naming the file).
    """
    base = (cwd if cwd is not None else Path.cwd()).absolute()
    if flag is not None and str(flag) != "":
        return StoreLocation(_absolute(Path(flag), base), "--store")
    env = os.environ.get(ENV_VAR, "")
    if env.strip():
        return StoreLocation(_absolute(Path(env), base), ENV_VAR)
    found = _from_pyproject(base)
    if found is not None:
        return found
    default = base / "baselines"
    if default.is_dir():
        return StoreLocation(default, "./baselines")
    raise StoreNotFoundError(
        f"no baseline store found from {base}: {_WAYS} (looked for each, in that order)"
    )


def _absolute(path: Path, base: Path) -> Path:
    path = path.expanduser()
    return path if path.is_absolute() else base / path


def _from_pyproject(start: Path) -> StoreLocation | None:
    """``store`` of the nearest ``pyproject.toml`` with a ``[tool.promptstate]`` table."""
    for folder in (start, *start.parents):
        candidate = folder / "pyproject.toml"
        if not candidate.is_file():
            continue
        try:
            data = tomllib.loads(candidate.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise BaselineError(
                f"{candidate}: not valid TOML ({exc}); fix it, or name the store with --store "
                "or PROMPTSTATE_STORE"
            ) from None
        except OSError as exc:
            raise BaselineError(
                f"{candidate}: cannot be read ({exc.strerror}); name the store with --store or "
                "PROMPTSTATE_STORE"
            ) from None
        tool = data.get("tool")
        table = tool.get("promptstate") if isinstance(tool, dict) else None
        if not isinstance(table, dict):
            continue
        if "store" not in table:
            return None
        value = table["store"]
        if not isinstance(value, str) or not value.strip():
            raise BaselineError(
                f"{candidate}: [tool.promptstate] store must be a non-empty string (a folder "
                f"path, relative to {folder}), got {value!r}"
            )
        return StoreLocation(_absolute(Path(value), folder), f"pyproject.toml ({candidate})")
    return None


def is_sample_store(path: str | Path) -> bool:
    """Whether ``path`` is the embedded sample's store or lies inside it.

    The sample store is ``baselines/`` of a source checkout (next to ``data_samples/``) or
    ``analysis/_sample_baselines`` of an installed wheel, compared by resolved path (symbolic
    links and ``..`` followed): a copy elsewhere is not the sample.
    """
    here = Path(__file__).resolve().parent.parent
    target = Path(path).expanduser().resolve()
    candidates = [here / "_sample_baselines", here.parent / "baselines"]
    if not (here.parent / "data_samples" / "ledger.yaml").is_file():
        candidates.pop()  # not a source checkout: a user's ./baselines next to site-packages
    return any(target.is_relative_to(c.resolve()) for c in candidates)


def check_writable(location: StoreLocation, command: str) -> None:
    """Refuse to write to the embedded sample's store, however it was named.

    The sample store ships with promptstate and its tests and documentation rely on it as it
    is; advice that named it with ``--store`` once led users to rewrite it. Copies of it are
    writable.

    Raises:
        BaselineError: ``location`` is (inside) the sample store (exit code 2; nothing was
            written); the message says how to make a store of one's own.
    """
    if is_sample_store(location.path):
        origin = f" (from {location.source})" if location.source else ""
        raise BaselineError(
            f"{command}: {location.path}{origin} is promptstate's bundled sample store, which "
            f"is read-only; {SAMPLE_ADVICE} (nothing was written)"
        )


def check_store_dir(location: StoreLocation, command: str, *, may_create: bool = False) -> None:
    """Refuse a store path that is not a folder before anything is read or written.

    Args:
        location: The store a command is about to use (an empty ``source`` is left out of the
            message).
        command: The command, for the message (e.g. ``baseline list``).
        may_create: The command creates the store when it does not exist (``baseline init``):
            only an existing path that is not a folder is refused.

    Raises:
        BaselineError: the path exists and is not a folder (a file), or it does not exist and
            the command does not create it (exit code 2, naming the path and the rule).
    """
    path = location.path
    if path.is_dir():
        return
    origin = f" (from {location.source})" if location.source else ""
    if path.exists() or path.is_symlink():
        what = "a file, not a folder" if path.is_file() else "not a folder"
        raise BaselineError(
            f"{command}: the store {path}{origin} is {what}; a baseline store is a folder of "
            "suites — name one with --store DIR (nothing was read or written)"
        )
    if not may_create:
        raise BaselineError(
            f"{command}: the store {path}{origin} does not exist; check the path, or create a "
            "store with `promptstate baseline init SUITE --store DIR --config suite.yaml`"
        )
