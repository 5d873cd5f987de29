"""When the run command reuses the Spark job's output, locally and on GCS."""

import dataclasses
import json
import os
import uuid

import pytest

from cloud import storage as gcs
from pipeline import config as config_lib
from pipeline import examples_stage
from tests.gcs_emulator import emulator_env  # pylint: disable=unused-import
from tests.gcs_emulator import emulator_url  # pylint: disable=unused-import


def _finished_output(tmp_path, ratings, config):
  examples_dir = config.resolved_examples_dir
  os.makedirs(examples_dir)
  job = examples_stage.job_config(config, str(ratings))
  summary = {
      "config": json.loads(json.dumps(dataclasses.asdict(job))),
      examples_stage.INPUT_FINGERPRINT_KEY:
          examples_stage.input_fingerprint(str(ratings)),
      examples_stage.CODE_VERSION_KEY:
          examples_stage.code_version.code_version(
              packages=examples_stage.JOB_PACKAGES),
  }
  with open(os.path.join(examples_dir, "summary.json"), "w") as summary_file:
    json.dump(summary, summary_file)
  return examples_dir, job


@pytest.fixture
def setup(tmp_path):
  ratings = tmp_path / "ratings.csv"
  ratings.write_text("i1,u1,5.0,1400000000\n")
  config = config_lib.PipelineConfig(output_root=str(tmp_path / "runs"))
  return tmp_path, ratings, config


def test_output_without_success_marker_is_not_current(setup):
  tmp_path, ratings, config = setup
  examples_dir, job = _finished_output(tmp_path, ratings, config)
  fingerprint = examples_stage.input_fingerprint(str(ratings))
  assert not examples_stage.is_current(examples_dir, job, fingerprint)


def test_same_input_and_settings_is_current(setup):
  tmp_path, ratings, config = setup
  examples_dir, job = _finished_output(tmp_path, ratings, config)
  open(os.path.join(examples_dir, "_SUCCESS"), "w").close()
  fingerprint = examples_stage.input_fingerprint(str(ratings))
  assert examples_stage.is_current(examples_dir, job, fingerprint)


def test_changed_settings_or_input_not_current(setup):
  tmp_path, ratings, config = setup
  examples_dir, job = _finished_output(tmp_path, ratings, config)
  open(os.path.join(examples_dir, "_SUCCESS"), "w").close()
  fingerprint = examples_stage.input_fingerprint(str(ratings))
  other_job = dataclasses.replace(job, negatives=5)
  assert not examples_stage.is_current(examples_dir, other_job, fingerprint)

  ratings.write_text("i1,u1,5.0,1400000000\ni2,u1,4.0,1400000001\n")
  changed = examples_stage.input_fingerprint(str(ratings))
  assert not examples_stage.is_current(examples_dir, job, changed)


def test_older_job_code_not_current(setup):
  tmp_path, ratings, config = setup
  examples_dir, job = _finished_output(tmp_path, ratings, config)
  open(os.path.join(examples_dir, "_SUCCESS"), "w").close()
  path = os.path.join(examples_dir, "summary.json")
  with open(path) as summary_file:
    summary = json.load(summary_file)
  summary[examples_stage.CODE_VERSION_KEY] = "older"
  with open(path, "w") as summary_file:
    json.dump(summary, summary_file)
  fingerprint = examples_stage.input_fingerprint(str(ratings))
  assert not examples_stage.is_current(examples_dir, job, fingerprint)


def test_gcs_fingerprint_follows_generation(emulator_env, tmp_path):
  bucket = f"fingerprint-{uuid.uuid4().hex[:8]}"
  gcs.make_client().create_bucket(bucket)
  uri = f"gs://{bucket}/ratings.csv"
  local = tmp_path / "ratings.csv"
  local.write_text("i1,u1,5.0,1400000000\n")
  gcs.upload_file(str(local), uri)
  first = examples_stage.input_fingerprint(uri)
  assert first["bytes"] == local.stat().st_size
  assert first["generation"]
  assert examples_stage.input_fingerprint(uri) == first

  local.write_text("i1,u1,4.0,1400000000\n")
  gcs.upload_file(str(local), uri)
  assert examples_stage.input_fingerprint(uri) != first
