"""The Spark tests' set-up (issue 20, item 10): where Java or PySpark is missing the shared
``spark`` fixture (tests/conftest.py) skips with a reason, unless ``PROMPTSTATE_REQUIRE_SPARK=1``
(set by ``.ci/run``, which installs Java 17) makes that a failure. Checked without removing
Java: the lookup is a parameter, and one subprocess runs the fixture with a PATH without Java."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT, java_executable, spark_decision, spark_missing

PROBE = "PROMPTSTATE_SPARK_PROBE"


def _no_java(name: str) -> str | None:
    return None


def _java(name: str) -> str | None:
    return "/usr/bin/java" if name == "java" else None


def _pyspark(name: str) -> bool:
    return True


def test_java_found_on_the_path_runs_spark() -> None:
    assert spark_missing({}, _java, _pyspark) is None
    assert spark_decision({}, _java, _pyspark) == ("run", "")
    assert spark_decision({"PROMPTSTATE_REQUIRE_SPARK": "1"}, _java, _pyspark) == ("run", "")


def test_missing_java_skips_with_the_reason() -> None:
    action, reason = spark_decision({}, _no_java, _pyspark)
    assert action == "skip"
    assert "Java 17" in reason
    assert "no java on the PATH" in reason
    assert "openjdk-17-jre-headless" in reason
    assert "PROMPTSTATE_REQUIRE_SPARK=1" in reason


def test_required_spark_turns_the_skip_into_a_failure() -> None:
    env = {"PROMPTSTATE_REQUIRE_SPARK": "1"}
    action, reason = spark_decision(env, _no_java, _pyspark)
    assert action == "fail"
    assert reason.startswith("PROMPTSTATE_REQUIRE_SPARK=1 but the Spark tests cannot run")
    assert "no java on the PATH" in reason
    # an explicit skip request cannot hide a required Spark either
    env["PROMPTSTATE_SKIP_SPARK"] = "1"
    assert spark_decision(env, _java, _pyspark)[0] == "fail"


def test_explicit_skip_and_missing_pyspark() -> None:
    assert spark_decision({"PROMPTSTATE_SKIP_SPARK": "1"}, _java, _pyspark)[0] == "skip"
    action, reason = spark_decision({}, _java, lambda name: False)
    assert action == "skip"
    assert "PySpark is not installed" in reason


def test_java_home_is_the_java_pyspark_uses(tmp_path: Path) -> None:
    """With JAVA_HOME set PySpark starts $JAVA_HOME/bin/java only: a java on the PATH does not
    count."""
    assert java_executable({"JAVA_HOME": str(tmp_path)}, _java) is None
    reason = spark_missing({"JAVA_HOME": str(tmp_path)}, _java, _pyspark)
    assert reason is not None
    assert f"JAVA_HOME={tmp_path} has no bin/java" in reason
    java = tmp_path / "bin" / "java"
    java.parent.mkdir()
    java.write_text("#!/bin/sh\n")
    java.chmod(0o755)
    assert java_executable({"JAVA_HOME": str(tmp_path)}, _no_java) == str(java)


def test_spark_fixture_probe(request: pytest.FixtureRequest) -> None:
    """Run only by :func:`test_the_fixture_skips_or_fails_without_java_on_the_path`."""
    if os.environ.get(PROBE) != "1":
        pytest.skip(f"run in a subprocess with {PROBE}=1")
    spark: Any = request.getfixturevalue("spark")
    assert spark is not None


@pytest.mark.parametrize("require", [False, True])
def test_the_fixture_skips_or_fails_without_java_on_the_path(
    require: bool, tmp_path: Path
) -> None:
    """The real fixture, in a pytest subprocess whose PATH holds no java (and no JAVA_HOME)."""
    env = {k: v for k, v in os.environ.items() if k not in ("JAVA_HOME", "PROMPTSTATE_SKIP_SPARK")}
    env["PATH"] = str(tmp_path)  # an empty directory: no java
    env[PROBE] = "1"
    env.pop("PROMPTSTATE_REQUIRE_SPARK", None)
    if require:
        env["PROMPTSTATE_REQUIRE_SPARK"] = "1"
    argv = [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider"]
    argv += [f"{Path(__file__).name}::test_spark_fixture_probe"]
    done = subprocess.run(
        argv, check=False, cwd=ROOT / "tests", env=env, capture_output=True, text=True,
        timeout=120,
    )
    out = done.stdout + done.stderr
    if require:
        assert done.returncode == 1, out
        assert "1 failed" in out, out  # the fixture is requested in the test body
        assert "PROMPTSTATE_REQUIRE_SPARK=1 but the Spark tests cannot run" in out
    else:
        assert done.returncode == 0, out
        assert "1 skipped" in out, out
        assert "no java on the PATH" in out
