"""First stage of a run: the Spark job, skipped when its output is current.

ImportExampleGen fingerprints its input files, including their modification
times, so rewriting identical shards would defeat TFX's cache. The Spark
job is therefore run only when there is no finished output for the same
input file, the same settings and the same version of the job's code.
"""

import dataclasses
import json
import os
from typing import Any, Dict

from absl import logging
import fsspec

from cloud import paths as cloud_paths
from pipeline import code_version
from pipeline.config import PipelineConfig
from spark import output_files
from spark.config import ExampleJobConfig

SUMMARY_FILE = "summary.json"
# Summary key that records which input file the examples came from.
INPUT_FINGERPRINT_KEY = "input_fingerprint"
# Summary key that records the version of the job's code, so that examples
# written by older code are rebuilt rather than reused.
CODE_VERSION_KEY = "code_version"
JOB_PACKAGES = ("spark", "schemas")
# Settings that change how the job runs but not what it writes.
_RUNTIME_ONLY = ("overwrite", "master", "driver_memory")


def job_config(config: PipelineConfig, ratings_path: str) -> ExampleJobConfig:
  """Return the Spark job's settings for this run."""
  return ExampleJobConfig(
      input_path=ratings_path,
      output_path=config.resolved_examples_dir,
      layout=config.layout,
      overwrite=True,
      **dataclasses.asdict(config.examples))


def input_fingerprint(path: str) -> Dict[str, Any]:
  """Return what identifies one version of the input file.

  A local file is identified by its size and modification time, a
  `gs://` object by its size and generation, which changes on every write.
  """
  if cloud_paths.is_gcs_path(path):
    filesystem, _, (object_path,) = fsspec.get_fs_token_paths(
        path, storage_options=cloud_paths.fsspec_storage_options(path))
    info = filesystem.info(object_path)
    return {"path": path, "bytes": info.get("size"),
            "generation": info.get("generation")}
  status = os.stat(path)
  return {"path": os.path.abspath(path), "bytes": status.st_size,
          "mtime_ns": status.st_mtime_ns}


def _comparable(job_settings: Dict[str, Any]) -> Dict[str, Any]:
  return {key: value for key, value in job_settings.items()
          if key not in _RUNTIME_ONLY}


def read_summary(examples_dir: str) -> Dict[str, Any]:
  path = cloud_paths.join_path(examples_dir, SUMMARY_FILE)
  with cloud_paths.open_file(path, "r") as summary_file:
    return json.load(summary_file)


def is_current(examples_dir: str, job: ExampleJobConfig,
               fingerprint: Dict[str, Any]) -> bool:
  """Return whether `examples_dir` contains a finished output of this job."""
  if not output_files.is_complete(examples_dir):
    return False
  try:
    summary = read_summary(examples_dir)
  except (OSError, ValueError):
    return False
  wanted = _comparable(json.loads(json.dumps(dataclasses.asdict(job))))
  return (_comparable(summary.get("config", {})) == wanted and
          summary.get(INPUT_FINGERPRINT_KEY) == fingerprint and
          summary.get(CODE_VERSION_KEY) ==
          code_version.code_version(packages=JOB_PACKAGES))


def prepare_examples(config: PipelineConfig, ratings_path: str) -> Dict[str, Any]:
  """Run the Spark job unless its output is current; return its summary."""
  # Imported here because it starts nothing but pulls in pyspark, which the
  # TFX side of the pipeline does not need.
  from spark import job as spark_job  # pylint: disable=g-import-not-at-top

  job = job_config(config, ratings_path)
  fingerprint = input_fingerprint(ratings_path)
  examples_dir = config.resolved_examples_dir
  if is_current(examples_dir, job, fingerprint):
    logging.info("Reusing the examples in %s: same input and settings",
                 examples_dir)
    return read_summary(examples_dir)

  summary = spark_job.run_job(job)
  summary[INPUT_FINGERPRINT_KEY] = fingerprint
  summary[CODE_VERSION_KEY] = code_version.code_version(packages=JOB_PACKAGES)
  # The fingerprint is added after the job's commit; a crash between the
  # two only costs a re-run of the job next time.
  output_files.write_text(
      cloud_paths.join_path(examples_dir, SUMMARY_FILE),
      json.dumps(summary, indent=2, sort_keys=True) + "\n")
  return summary
