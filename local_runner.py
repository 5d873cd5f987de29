"""Runner file for the TFX CLI's local engine: LocalDagRunner, SQLite store.

    tfx pipeline create --engine local --pipeline_path local_runner.py
    tfx run create --engine local --pipeline_name candidate-generation

The TFX CLI runs this file without command-line arguments, so the JSON
configuration (see pipeline/config.py) comes from the file named by the
environment variable CANDIDATE_GENERATION_CONFIG; without it the defaults
apply. `tfx run create` runs this file again in a new process, so the
variable must be set for both commands.

The TFX pipeline needs the Spark job's output: this file reads the catalog
size from summary.json in the examples folder and stops when it is missing.
`python -m pipeline.run` runs the Spark job and the pipeline in one command.
"""

import os
import sys

from absl import logging

from pipeline import config as config_lib
from pipeline import run as run_lib
from pipeline import vertex_runner

CONFIG_ENV = "CANDIDATE_GENERATION_CONFIG"


def load_config() -> config_lib.PipelineConfig:
  """Load the configuration named by CANDIDATE_GENERATION_CONFIG, if set."""
  path = os.environ.get(CONFIG_ENV)
  return config_lib.load(path) if path else config_lib.PipelineConfig()


def main() -> int:
  logging.set_verbosity(logging.INFO)
  config = load_config()
  try:
    catalog_size = vertex_runner.read_catalog_size(
        config.resolved_examples_dir)
  except (FileNotFoundError, ValueError) as error:
    sys.exit(f"Cannot build the pipeline: {error}")
  # run_local calls LocalDagRunner().run, which `tfx pipeline create`
  # intercepts to register the pipeline without running it.
  run_lib.run_local(config, catalog_size)
  return 0


if __name__ == "__main__":
  sys.exit(main())
