"""Tests of the command-line entry point, run as separate processes."""

import json
import os
import pathlib
import subprocess
import sys

import pytest

from tests import spark_fixtures as sf

_ENTRY = str(sf.REPO_ROOT / "spark" / "make_examples.py")


def _without_repo_on_path():
    # The entry file must find its packages without help from PYTHONPATH.
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    env["PYSPARK_PYTHON"] = sys.executable
    return env


def test_cli_missing_input_exit_status(tmp_path):
    missing = str(tmp_path / "missing.csv")
    result = subprocess.run(
        [sys.executable, _ENTRY, "--input", missing,
         "--output", str(tmp_path / "out")],
        capture_output=True, text=True, env=_without_repo_on_path(),
        cwd=str(tmp_path), timeout=120, check=False)
    assert result.returncode == 2
    assert f"not found: {missing!r}" in result.stderr
    assert "Exception" not in result.stderr


def test_cli_invalid_option_rejected(tmp_path):
    result = subprocess.run(
        [sys.executable, _ENTRY, "--input", "x", "--output", "y",
         "--holdout-quantile", "1.5"],
        capture_output=True, text=True, env=_without_repo_on_path(),
        cwd=str(tmp_path), timeout=120, check=False)
    assert result.returncode == 2
    assert "holdout_quantile must be in (0, 1]" in result.stderr


def test_spark_submit_runs_job(tmp_path):
    spark_submit = pathlib.Path(sys.executable).parent / "spark-submit"
    if not spark_submit.exists():
        pytest.skip(f"spark-submit not found next to {sys.executable}")
    events = [("u1", "a", 5.0, 1), ("u1", "b", 2.0, 2), ("u2", "a", 4.0, 1),
              ("u2", "c", 4.0, 3), ("u1", "c", 5.0, 9)]
    path = sf.write_lines(tmp_path, sf.amazon_lines(events))
    output = tmp_path / "out"
    # Run from another directory so that only the entry file's own fallback
    # can make the packages importable on the driver and the workers.
    result = subprocess.run(
        [str(spark_submit), "--master", "local[1]",
         "--conf", "spark.driver.bindAddress=127.0.0.1",
         "--conf", "spark.driver.host=127.0.0.1",
         "--conf", "spark.ui.enabled=false",
         "--conf", "spark.sql.shuffle.partitions=2",
         _ENTRY, "--input", path, "--output", str(output),
         "--num-shards", "2", "--holdout-quantile", "0.8"],
        capture_output=True, text=True, env=_without_repo_on_path(),
        cwd=str(tmp_path), timeout=300, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "train: " in result.stdout
    summary = json.loads((output / "summary.json").read_text())
    assert summary["holdout_users"] == 1
    assert len(sf.read_examples(output, "train")) == summary["splits"][
        "train"]["examples"]
