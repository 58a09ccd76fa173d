"""Shared fixtures: the embedded sample, its ledger and ground truth."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
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


@pytest.fixture(scope="session")
def spark() -> Iterator[Any]:
    """One shared PySpark session in ``local[2]`` for the whole test run (Java 17 needed).

    The session is started on first use and stopped at the end of the run; tests that need
    Spark take this fixture. When PySpark or Java is missing the test fails (CI installs both),
    unless ``PROMPTSTATE_SKIP_SPARK=1`` asks to skip.
    """
    if os.environ.get("PROMPTSTATE_SKIP_SPARK") == "1":
        pytest.skip("PROMPTSTATE_SKIP_SPARK=1")
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
