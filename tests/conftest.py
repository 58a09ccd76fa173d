"""Shared fixtures: the embedded sample, its ledger and ground truth."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import sys
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import polars as pl
import pytest

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "data_samples"


#: Size of the slow simulations when neither ``PROMPTSTATE_SIM_SCALE`` nor ``--full-size`` says.
DEFAULT_SIM_SCALE = "0.25"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--full-size",
        action="store_true",
        help="run the slow statistical simulations at full size (PROMPTSTATE_SIM_SCALE=1); "
        "the default is the CI size, 0.25",
    )


def pytest_configure(config: pytest.Config) -> None:
    # Every simulation reads PROMPTSTATE_SIM_SCALE when it runs; set it once, here.
    if config.getoption("--full-size"):
        os.environ["PROMPTSTATE_SIM_SCALE"] = "1.0"
    else:
        os.environ.setdefault("PROMPTSTATE_SIM_SCALE", DEFAULT_SIM_SCALE)


def sim_scale() -> float:
    """Size factor of the slow simulations (``PROMPTSTATE_SIM_SCALE``; 0.25 unless set)."""
    return float(os.environ.get("PROMPTSTATE_SIM_SCALE", DEFAULT_SIM_SCALE))


@pytest.fixture(scope="session")
def sample_dir() -> Path:
    return SAMPLES


@pytest.fixture(scope="session")
def events_path() -> Path:
    return SAMPLES / "events.parquet"


@pytest.fixture(scope="session")
def ledger_path() -> Path:
    return SAMPLES / "ledger.yaml"


@pytest.fixture(scope="session")
def sample_events(events_path: Path) -> pl.DataFrame:
    return pl.read_parquet(events_path)


@pytest.fixture(scope="session")
def truth() -> pl.DataFrame:
    return pl.read_parquet(SAMPLES / "truth.parquet")


@pytest.fixture(scope="session")
def truth_info() -> dict[str, Any]:
    return json.loads((SAMPLES / "truth.json").read_text())


@pytest.fixture(scope="session")
def ledger(ledger_path: Path) -> Any:
    from analysis import load_ledger

    return load_ledger(ledger_path)


#: Set to 1 (``.ci/run`` does) to make a missing Java or PySpark fail the Spark tests.
REQUIRE_SPARK = "PROMPTSTATE_REQUIRE_SPARK"
#: Set to 1 to skip the Spark tests even where Spark could run.
SKIP_SPARK = "PROMPTSTATE_SKIP_SPARK"


def java_executable(
    env: Mapping[str, str], which: Callable[[str], str | None] = shutil.which
) -> str | None:
    """The ``java`` that PySpark would start: ``$JAVA_HOME/bin/java`` when ``JAVA_HOME`` is set
    (PySpark then uses only that one), else ``java`` on the ``PATH``; ``None`` when missing."""
    home = env.get("JAVA_HOME")
    if home:
        java = Path(home) / "bin" / "java"
        return str(java) if java.is_file() and os.access(java, os.X_OK) else None
    return which("java")


def spark_missing(
    env: Mapping[str, str],
    which: Callable[[str], str | None] = shutil.which,
    has_module: Callable[[str], bool] = lambda name: importlib.util.find_spec(name) is not None,
) -> str | None:
    """Why the Spark tests cannot run here (``None``: they can): PySpark not installed, or no
    Java (``which`` looks up ``java`` on the PATH; tests pass their own)."""
    if not has_module("pyspark"):
        return "PySpark is not installed (pip install -e '.[test]')"
    if java_executable(env, which) is None:
        home = env.get("JAVA_HOME")
        where = f"JAVA_HOME={home} has no bin/java" if home else "no java on the PATH"
        return (
            f"Java 17 is needed by PySpark and missing ({where}); install a JRE 17, e.g. "
            "apt-get install openjdk-17-jre-headless"
        )
    return None


def spark_decision(
    env: Mapping[str, str],
    which: Callable[[str], str | None] = shutil.which,
    has_module: Callable[[str], bool] = lambda name: importlib.util.find_spec(name) is not None,
) -> tuple[str, str]:
    """What the ``spark`` fixture does here: ``("run", "")``, ``("skip", reason)`` or
    ``("fail", reason)``.

    ``PROMPTSTATE_REQUIRE_SPARK=1`` (set by ``.ci/run``) turns a missing Java or PySpark, and
    ``PROMPTSTATE_SKIP_SPARK=1``, into a failure; without it the Spark tests skip with the
    reason.
    """
    required = env.get(REQUIRE_SPARK) == "1"
    if env.get(SKIP_SPARK) == "1":
        reason = f"{SKIP_SPARK}=1 asks to skip the Spark tests"
    else:
        missing = spark_missing(env, which, has_module)
        if missing is None:
            return "run", ""
        reason = missing
    if required:
        return "fail", f"{REQUIRE_SPARK}=1 but the Spark tests cannot run: {reason}"
    return "skip", f"{reason} (set {REQUIRE_SPARK}=1 to make this a failure)"


@pytest.fixture(scope="session")
def spark() -> Iterator[Any]:
    """One shared PySpark session in ``local[2]`` for the whole test run (Java 17 needed).

    The session is started on first use and stopped at the end of the run; tests that need
    Spark take this fixture. Where PySpark or Java is missing the test is skipped with the
    reason, unless ``PROMPTSTATE_REQUIRE_SPARK=1`` (``.ci/run`` sets it after installing Java)
    makes that a failure; ``PROMPTSTATE_SKIP_SPARK=1`` skips (:func:`spark_decision`).
    """
    action, reason = spark_decision(os.environ)
    if action == "skip":
        pytest.skip(reason)
    if action == "fail":
        pytest.fail(reason, pytrace=False)
    from pyspark.sql import SparkSession

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    session = (
        SparkSession.builder.master("local[2]")
        .appName("promptstate-tests")
        .config("spark.sql.shuffle.partitions", "4")
        .config("spark.default.parallelism", "4")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.driver.memory", "2g")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()
