"""The run command's own steps, short of running the pipeline."""

import dataclasses
import os

import pytest

from pipeline import config as config_lib
from pipeline import run as run_lib


def test_synthetic_ratings_written_once(tmp_path):
  config = config_lib.PipelineConfig(output_root=str(tmp_path))
  path = run_lib.synthetic_ratings(config, scale=0.001)
  with open(path, encoding="utf-8") as ratings:
    lines = ratings.read().splitlines()
  assert len(lines) == 575  # round(574,628 x 0.001)
  assert len(lines[0].split(",")) == 4
  modified = os.path.getmtime(path)
  assert run_lib.synthetic_ratings(config, scale=0.001) == path
  assert os.path.getmtime(path) == modified


def test_synthetic_ratings_follow_seed(tmp_path):
  config = config_lib.PipelineConfig(output_root=str(tmp_path))
  other = dataclasses.replace(
      config, examples=dataclasses.replace(config.examples, seed=1))
  first = run_lib.synthetic_ratings(config, scale=0.001)
  second = run_lib.synthetic_ratings(other, scale=0.001)
  assert first != second
  with open(first, "rb") as a, open(second, "rb") as b:
    assert a.read() != b.read()


def test_synthetic_scale_must_be_positive(tmp_path):
  config = config_lib.PipelineConfig(output_root=str(tmp_path))
  with pytest.raises(ValueError, match="synthetic-scale"):
    run_lib.synthetic_ratings(config, scale=0)


def test_missing_ratings_file_clear_error(tmp_path, capsys):
  code = run_lib.main(["--ratings", str(tmp_path / "nope.csv"),
                       "--output-root", str(tmp_path)])
  assert code == 2
  error = capsys.readouterr().err
  assert "nope.csv" in error
  assert "Traceback" not in error


def test_config_typo_clear_error(tmp_path, capsys):
  config = tmp_path / "c.json"
  config.write_text('{"trainer": {"epoch": 2}}')
  assert run_lib.main(["--config", str(config)]) == 2
  assert "epoch" in capsys.readouterr().err


def test_no_holdout_users_clear_error():
  summary = {"input_path": "r.csv", "holdout_users": 0,
             "cold_start_users": 7}
  with pytest.raises(run_lib.NoHoldoutUsersError, match="r.csv"):
    run_lib.check_holdout(summary)
