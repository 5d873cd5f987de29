"""Compile the pipeline for Vertex AI Pipelines, and optionally submit it.

    python -m pipeline.vertex_runner \\
        --project my-project --region europe-west4 \\
        --image europe-west4-docker.pkg.dev/my-project/recs/pipeline:TAG \\
        --pipeline-root gs://my-bucket/pipeline_root \\
        --examples-dir gs://my-bucket/examples/run1 \\
        --serving-root gs://my-bucket/serving \\
        --output candidate-generation.json [--submit]

The pipeline is the one that `python -m pipeline.run` runs locally
(`pipeline.pipeline.create_pipeline`), compiled with TFX's
KubeflowV2DagRunner, with these differences:

- Every component runs in the project image (`Dockerfile`).
- The Beam components (ExampleGen, StatisticsGen, Transform, Evaluator) run
  on Dataflow. The workers use the same image, so they can import the
  project's package, the custom TFMA metric module included.
- The Trainer runs as a Vertex AI custom job on a GPU worker, through the
  Trainer of `tfx.extensions.google_cloud_ai_platform`.
- The Pusher writes to a `gs://` serving root, or uploads the model to a
  Vertex AI endpoint.

Compiling makes no call to Google Cloud, with three exceptions: `--submit`,
a catalog size read from a `gs://` summary.json (when `--catalog-size` is
not given), and a history window other than 10, whose adjusted schemas are
written below the pipeline root.
"""

import argparse
import dataclasses
import json
import os
import sys
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from absl import logging

from cloud import paths
from pipeline import config as config_lib
from pipeline.examples_stage import SUMMARY_FILE

# Machine of the Trainer's custom job: 8 vCPUs and 30 GB of memory.
DEFAULT_TRAINER_MACHINE_TYPE = "n1-standard-8"
DEFAULT_ACCELERATOR_TYPE = "NVIDIA_TESLA_T4"
DEFAULT_ACCELERATOR_COUNT = 1
DEFAULT_DATAFLOW_MACHINE_TYPE = "n1-standard-4"
DEFAULT_DATAFLOW_MAX_WORKERS = 10
# Folder below the pipeline root for Dataflow's temporary files when
# --dataflow-temp-location is not given.
DEFAULT_DATAFLOW_TEMP_FOLDER = "dataflow-tmp"
# Folder of the curated schema files inside the image, because the
# Dockerfile copies the repository to /pipeline (`COPY . /pipeline`).
DEFAULT_IMAGE_SCHEMA_DIR = "/pipeline/schemas"
# Prebuilt Vertex AI prediction image for TensorFlow SavedModels. 2.15 is the
# newest TensorFlow in google-cloud-aiplatform 1.165's list of prebuilt
# prediction images.
# NOTE: the model is exported with TensorFlow 2.16; serving it with the
# TensorFlow 2.15 image has not been tried.
DEFAULT_SERVING_IMAGE = (
    "us-docker.pkg.dev/vertex-ai/prediction/tf2-cpu.2-15:latest")
DEFAULT_SERVING_MACHINE_TYPE = "n1-standard-4"


class CredentialsNotFoundError(RuntimeError):
  """No Application Default Credentials are set up for `--submit`."""


@dataclasses.dataclass(frozen=True)
class VertexSettings:
  """Google Cloud locations and machines of one Vertex AI pipeline.

  Attributes:
    project: Google Cloud project id of every job.
    region: Region of Vertex AI Pipelines, the Trainer's custom job and,
      unless `dataflow_region` is set, Dataflow.
    image: URI of the project image in Artifact Registry. It runs every
      component, the Trainer's custom job and the Dataflow workers.
    pipeline_root: `gs://` prefix for the artifacts of every run.
    examples_dir: `gs://` output folder of the Spark example job.
    serving_root: `gs://` prefix below which the Pusher writes each blessed
      SavedModel. Exactly one of `serving_root` and `endpoint_name` is set.
    endpoint_name: Display name of the Vertex AI endpoint that the Pusher
      uploads each blessed model to; created on the first push.
    serving_image: Prediction image of the uploaded model.
    serving_machine_type: Machine type of the endpoint's replicas.
    dataflow_temp_location: `gs://` prefix for Dataflow's temporary and
      staging files; defaults to a folder below the pipeline root.
    dataflow_region: Region of the Dataflow jobs; defaults to `region`.
    dataflow_machine_type: Machine type of the Dataflow workers.
    dataflow_max_workers: Upper bound of Dataflow's autoscaling, per job.
    service_account: Email of the service account that runs the pipeline,
      the Dataflow workers and the Trainer's custom job. None uses each
      service's default account.
    trainer_machine_type: Machine type of the Trainer's custom job.
    accelerator_type: Vertex AI accelerator type of the Trainer, as named in
      the `AcceleratorType` enum of the Vertex AI API.
    accelerator_count: Accelerators on the Trainer's machine; 0 trains on
      the CPU.
    image_schema_dir: Folder of the curated schema files inside the image.
    extra_beam_args: More Beam options, appended after the Dataflow ones.
  """

  project: str
  region: str
  image: str
  pipeline_root: str
  examples_dir: str
  serving_root: Optional[str] = None
  endpoint_name: Optional[str] = None
  serving_image: str = DEFAULT_SERVING_IMAGE
  serving_machine_type: str = DEFAULT_SERVING_MACHINE_TYPE
  dataflow_temp_location: Optional[str] = None
  dataflow_region: Optional[str] = None
  dataflow_machine_type: str = DEFAULT_DATAFLOW_MACHINE_TYPE
  dataflow_max_workers: int = DEFAULT_DATAFLOW_MAX_WORKERS
  service_account: Optional[str] = None
  trainer_machine_type: str = DEFAULT_TRAINER_MACHINE_TYPE
  accelerator_type: str = DEFAULT_ACCELERATOR_TYPE
  accelerator_count: int = DEFAULT_ACCELERATOR_COUNT
  image_schema_dir: str = DEFAULT_IMAGE_SCHEMA_DIR
  extra_beam_args: Tuple[str, ...] = ()

  def __post_init__(self):
    for name in ("project", "region", "image"):
      if not getattr(self, name):
        raise ValueError(f"{name} is required, got {getattr(self, name)!r}")
    # Vertex AI and Dataflow workers cannot read the compiling machine's disk.
    for name in ("pipeline_root", "examples_dir", "serving_root",
                 "dataflow_temp_location"):
      value = getattr(self, name)
      if value is None:
        continue
      if not paths.is_gcs_path(value):
        raise ValueError(
            f"{name} must be a gs:// URI, because Vertex AI and Dataflow "
            f"cannot read local paths; got {value!r}")
      try:
        paths.parse_gcs_uri(value)
      except ValueError as error:
        raise ValueError(f"invalid {name}: {error}") from None
    if bool(self.serving_root) == bool(self.endpoint_name):
      raise ValueError(
          "set exactly one push target: a gs:// serving root or a Vertex AI "
          f"endpoint name; got serving_root={self.serving_root!r}, "
          f"endpoint_name={self.endpoint_name!r}")
    if self.dataflow_max_workers < 1:
      raise ValueError("dataflow_max_workers must be at least 1, got "
                       f"{self.dataflow_max_workers}")
    if self.accelerator_count < 0:
      raise ValueError("accelerator_count must be 0 or more, got "
                       f"{self.accelerator_count}")
    if self.accelerator_count and (self.accelerator_type
                                   not in accelerator_types()):
      raise ValueError(
          f"unknown accelerator type {self.accelerator_type!r}; known: "
          f"{', '.join(accelerator_types())}")

  @property
  def resolved_dataflow_temp_location(self) -> str:
    return self.dataflow_temp_location or paths.join_path(
        self.pipeline_root, DEFAULT_DATAFLOW_TEMP_FOLDER)

  @property
  def resolved_dataflow_region(self) -> str:
    return self.dataflow_region or self.region


def accelerator_types() -> List[str]:
  """Return the accelerator types of the installed Vertex AI client."""
  # Imported here: the generated API types take about a second to import.
  from google.cloud.aiplatform_v1.types import accelerator_type  # pylint: disable=g-import-not-at-top

  return [name for name in accelerator_type.AcceleratorType.__members__
          if name != "ACCELERATOR_TYPE_UNSPECIFIED"]


def read_catalog_size(examples_dir: str) -> int:
  """Read the catalog size from the Spark job's summary.json.

  Args:
    examples_dir: Output folder of the Spark example job, local or `gs://`.

  Returns:
    The number of items in the training catalog (`catalog_items`).

  Raises:
    FileNotFoundError: The folder has no summary.json, so the Spark job has
      not finished there.
    ValueError: summary.json is not valid JSON or has no `catalog_items`.
  """
  path = paths.join_path(examples_dir, SUMMARY_FILE)
  try:
    with paths.open_file(path, "r", encoding="utf-8") as summary_file:
      summary = json.load(summary_file)
  except FileNotFoundError:
    raise FileNotFoundError(
        f"{path} not found: run the Spark example job with this output "
        "folder first (locally `python -m pipeline.run` or "
        "`python -m spark.make_examples --input RATINGS --output "
        f"{examples_dir}`, on Google Cloud `python -m cloud.dataproc`)"
    ) from None
  except json.JSONDecodeError as error:
    raise ValueError(f"{path} is not valid JSON: {error}") from None
  if not isinstance(summary, dict) or "catalog_items" not in summary:
    raise ValueError(f"{path} has no 'catalog_items' entry; rerun the Spark "
                     "example job to rewrite it")
  return int(summary["catalog_items"])


def dataflow_beam_args(settings: VertexSettings) -> List[str]:
  """Return the Beam options that run the Beam components on Dataflow."""
  args = [
      "--runner=DataflowRunner",
      f"--project={settings.project}",
      f"--region={settings.resolved_dataflow_region}",
      f"--temp_location={settings.resolved_dataflow_temp_location}",
      f"--machine_type={settings.dataflow_machine_type}",
      f"--max_num_workers={settings.dataflow_max_workers}",
      # Workers import the project's modules (the TFMA metric, the
      # preprocessing_fn) from the image.
      # NOTE: Dataflow starts a custom worker image through
      # /opt/apache/beam/boot, which the Dockerfile does not yet install;
      # docs/cloud.md describes the change it needs.
      f"--sdk_container_image={settings.image}",
  ]
  if settings.service_account:
    args.append(f"--service_account_email={settings.service_account}")
  args.extend(settings.extra_beam_args)
  return args


def training_job_args(settings: VertexSettings) -> Dict[str, Any]:
  """Return the Vertex AI CustomJob for TRAINING_ARGS_KEY.

  The Trainer extension (TFX 1.16) reads `project` from this dict, takes
  `job_spec` as the CustomJobSpec, and sets the container command itself.
  """
  machine_spec: Dict[str, Any] = {"machine_type": settings.trainer_machine_type}
  if settings.accelerator_count:
    machine_spec["accelerator_type"] = settings.accelerator_type
    machine_spec["accelerator_count"] = settings.accelerator_count
  job_spec: Dict[str, Any] = {
      "worker_pool_specs": [{
          "machine_spec": machine_spec,
          "replica_count": 1,
          "container_spec": {"image_uri": settings.image},
      }],
  }
  if settings.service_account:
    job_spec["service_account"] = settings.service_account
  return {"project": settings.project, "job_spec": job_spec}


def vertex_trainer_factory(settings: VertexSettings) -> Callable[..., Any]:
  """Return a `trainer_factory` that builds the Vertex AI Trainer."""
  from tfx import v1 as tfx  # pylint: disable=g-import-not-at-top

  cloud = tfx.extensions.google_cloud_ai_platform

  def make_trainer(custom_config: Dict[str, Any], **trainer_args):
    custom_config = dict(custom_config)
    # run_fn drops exactly these keys before it parses the hyperparameters
    # (trainer.hyperparameters.CLOUD_TRAINER_KEYS).
    custom_config.update({
        cloud.ENABLE_VERTEX_KEY: True,
        cloud.VERTEX_REGION_KEY: settings.region,
        cloud.TRAINING_ARGS_KEY: training_job_args(settings),
    })
    return cloud.Trainer(custom_config=custom_config, **trainer_args)

  return make_trainer


def vertex_pusher_factory(settings: VertexSettings) -> Callable[..., Any]:
  """Return a `pusher_factory` that uploads the model to a Vertex endpoint."""
  from tfx import v1 as tfx  # pylint: disable=g-import-not-at-top

  cloud = tfx.extensions.google_cloud_ai_platform

  def make_pusher(**pusher_args):
    return cloud.Pusher(
        custom_config={
            cloud.ENABLE_VERTEX_KEY: True,
            cloud.VERTEX_REGION_KEY: settings.region,
            cloud.VERTEX_CONTAINER_IMAGE_URI_KEY: settings.serving_image,
            cloud.SERVING_ARGS_KEY: {
                "project_id": settings.project,
                "endpoint_name": settings.endpoint_name,
                "machine_type": settings.serving_machine_type,
            },
        },
        **pusher_args)

  return make_pusher


def cloud_config(config: config_lib.PipelineConfig,
                 settings: VertexSettings) -> config_lib.PipelineConfig:
  """Return `config` with the Cloud Storage locations of `settings`."""
  return dataclasses.replace(
      config,
      pipeline_root=settings.pipeline_root,
      examples_dir=settings.examples_dir,
      serving_root=settings.serving_root,
      # Vertex AI keeps its own ML Metadata store.
      metadata_path=None)


def create_vertex_pipeline(config: config_lib.PipelineConfig,
                           settings: VertexSettings, catalog_size: int):
  """Build the TFX pipeline object for Vertex AI."""
  from pipeline import pipeline as pipeline_lib  # pylint: disable=g-import-not-at-top

  pusher_factory = (vertex_pusher_factory(settings)
                    if settings.endpoint_name else None)
  return pipeline_lib.create_pipeline(
      cloud_config(config, settings),
      catalog_size,
      metadata_connection_config=None,
      trainer_factory=vertex_trainer_factory(settings),
      beam_pipeline_args=dataflow_beam_args(settings),
      pusher_factory=pusher_factory,
      schema_dir=settings.image_schema_dir)


def compile_pipeline(config: config_lib.PipelineConfig,
                     settings: VertexSettings, catalog_size: int,
                     output_path: str) -> str:
  """Compile the pipeline to a Vertex AI pipeline JSON file.

  Returns:
    The path of the written file: `output_path`, except under
    `tfx pipeline create --engine vertex`, whose patched runner writes
    `pipeline.json` below `$VERTEX_HOME` or `$HOME/tfx/vertex/`.
  """
  from tfx import v1 as tfx  # pylint: disable=g-import-not-at-top

  runner = tfx.orchestration.experimental.KubeflowV2DagRunner(
      config=tfx.orchestration.experimental.KubeflowV2DagRunnerConfig(
          default_image=settings.image),
      output_dir=os.path.dirname(os.path.abspath(output_path)),
      output_filename=os.path.basename(output_path))
  runner.run(create_vertex_pipeline(config, settings, catalog_size))
  # The TFX CLI's patch of run() changes these two attributes, and the
  # runner has no public accessor for them.
  written = os.path.join(runner._output_dir, runner._output_filename)  # pylint: disable=protected-access
  logging.info("Wrote the Vertex AI pipeline to %s", written)
  return written


def submit_pipeline(config: config_lib.PipelineConfig,
                    settings: VertexSettings, pipeline_path: str) -> str:
  """Submit a compiled pipeline as a Vertex AI PipelineJob.

  Uses Application Default Credentials only.

  Returns:
    The resource name of the pipeline job.

  Raises:
    CredentialsNotFoundError: No Application Default Credentials are set up.
  """
  # Imported here so that compiling never loads the Google Cloud clients.
  import google.auth  # pylint: disable=g-import-not-at-top
  from google.auth import exceptions as auth_exceptions  # pylint: disable=g-import-not-at-top
  from google.cloud import aiplatform  # pylint: disable=g-import-not-at-top

  try:
    credentials, _ = google.auth.default(
        scopes=["https://www.googleapis.com/auth/cloud-platform"])
  except auth_exceptions.DefaultCredentialsError as error:
    raise CredentialsNotFoundError(
        "no Google Cloud credentials found, so the pipeline was compiled to "
        f"{pipeline_path} but not submitted. Run `gcloud auth "
        "application-default login`, or set GOOGLE_APPLICATION_CREDENTIALS "
        "to a service account key file kept outside the repository, then "
        f"submit again. Cause: {error}") from error

  job = aiplatform.PipelineJob(
      display_name=config.pipeline_name,
      template_path=pipeline_path,
      pipeline_root=settings.pipeline_root,
      credentials=credentials,
      project=settings.project,
      location=settings.region)
  job.submit(service_account=settings.service_account)
  logging.info("Submitted pipeline job %s", job.resource_name)
  return job.resource_name


def _gcs_uri(value: str) -> str:
  if not paths.is_gcs_path(value):
    raise argparse.ArgumentTypeError(f"expected a gs:// URI, got {value!r}")
  return value


def _positive_int(value: str) -> int:
  number = int(value)
  if number < 1:
    raise argparse.ArgumentTypeError(f"expected 1 or more, got {value}")
  return number


def _build_parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(
      prog="python -m pipeline.vertex_runner",
      description="Compile the candidate-generation pipeline for Vertex AI "
      "Pipelines, with Dataflow for Beam and a GPU custom job for the "
      "Trainer, and optionally submit it.")
  parser.add_argument("--config", help="JSON configuration file; see "
                      "pipeline/config.py. Its paths are replaced by the "
                      "gs:// options below.")

  # Project, image and Cloud Storage locations.
  parser.add_argument("--project", required=True,
                      help="Google Cloud project id.")
  parser.add_argument("--region", required=True,
                      help="Region of Vertex AI, e.g. europe-west4.")
  parser.add_argument("--image", required=True,
                      help="Project image URI, e.g. "
                      "REGION-docker.pkg.dev/PROJECT/REPOSITORY/pipeline:TAG.")
  parser.add_argument("--pipeline-root", required=True, type=_gcs_uri,
                      help="gs:// prefix for the pipeline's artifacts.")
  parser.add_argument("--examples-dir", required=True, type=_gcs_uri,
                      help="gs:// output folder of the Spark example job.")

  # Push target.
  push = parser.add_mutually_exclusive_group(required=True)
  push.add_argument("--serving-root", type=_gcs_uri,
                    help="gs:// prefix that blessed SavedModels are "
                    "pushed below.")
  push.add_argument("--vertex-endpoint",
                    help="Display name of a Vertex AI endpoint to upload "
                    "blessed models to; created when missing.")
  parser.add_argument("--serving-image", default=DEFAULT_SERVING_IMAGE,
                      help="Prediction image for --vertex-endpoint "
                      "(default: %(default)s).")
  parser.add_argument("--serving-machine-type",
                      default=DEFAULT_SERVING_MACHINE_TYPE,
                      help="Machine type of the endpoint's replicas "
                      "(default: %(default)s).")

  parser.add_argument("--catalog-size", type=_positive_int,
                      help="Items in the training catalog; sets the "
                      "reference K = catalog / 50. Default: read from "
                      "summary.json in --examples-dir.")

  # Dataflow, for the Beam components.
  parser.add_argument("--dataflow-temp-location", type=_gcs_uri,
                      help="gs:// prefix for Dataflow's temporary files "
                      f"(default: PIPELINE_ROOT/{DEFAULT_DATAFLOW_TEMP_FOLDER}).")
  parser.add_argument("--dataflow-region",
                      help="Region of the Dataflow jobs (default: --region).")
  parser.add_argument("--dataflow-machine-type",
                      default=DEFAULT_DATAFLOW_MACHINE_TYPE,
                      help="Machine type of the Dataflow workers "
                      "(default: %(default)s).")
  parser.add_argument("--dataflow-max-workers", type=_positive_int,
                      default=DEFAULT_DATAFLOW_MAX_WORKERS,
                      help="Maximum number of Dataflow workers per job "
                      "(default: %(default)s).")
  parser.add_argument("--beam-arg", action="append", default=[],
                      dest="beam_args", metavar="OPTION",
                      help="Extra Beam option such as "
                      "--beam-arg=--subnetwork=...; repeatable.")
  parser.add_argument("--service-account",
                      help="Service account email for the pipeline job, the "
                      "Dataflow workers and the Trainer's custom job. "
                      "Default: each service's default account.")

  # The Trainer's custom job.
  parser.add_argument("--trainer-machine-type",
                      default=DEFAULT_TRAINER_MACHINE_TYPE,
                      help="Machine type of the Trainer's custom job "
                      "(default: %(default)s).")
  parser.add_argument("--accelerator-type", default=DEFAULT_ACCELERATOR_TYPE,
                      help="GPU type of the Trainer, as in Vertex AI's "
                      "AcceleratorType (default: %(default)s).")
  parser.add_argument("--accelerator-count", type=int,
                      default=DEFAULT_ACCELERATOR_COUNT,
                      help="GPUs of the Trainer; 0 trains on the CPU "
                      "(default: %(default)s).")

  parser.add_argument("--image-schema-dir", default=DEFAULT_IMAGE_SCHEMA_DIR,
                      help="Folder of the curated schemas inside the image "
                      "(default: %(default)s).")
  parser.add_argument("--output",
                      help="Pipeline JSON file to write "
                      "(default: PIPELINE_NAME.json in the current folder).")
  parser.add_argument("--submit", action="store_true",
                      help="Submit the compiled pipeline to Vertex AI "
                      "Pipelines with Application Default Credentials.")
  return parser


def settings_from_args(args: argparse.Namespace) -> VertexSettings:
  """Build the settings from parsed command-line arguments."""
  return VertexSettings(
      project=args.project,
      region=args.region,
      image=args.image,
      pipeline_root=args.pipeline_root,
      examples_dir=args.examples_dir,
      serving_root=args.serving_root,
      endpoint_name=args.vertex_endpoint,
      serving_image=args.serving_image,
      serving_machine_type=args.serving_machine_type,
      dataflow_temp_location=args.dataflow_temp_location,
      dataflow_region=args.dataflow_region,
      dataflow_machine_type=args.dataflow_machine_type,
      dataflow_max_workers=args.dataflow_max_workers,
      service_account=args.service_account,
      trainer_machine_type=args.trainer_machine_type,
      accelerator_type=args.accelerator_type,
      accelerator_count=args.accelerator_count,
      image_schema_dir=args.image_schema_dir,
      extra_beam_args=tuple(args.beam_args))


def main(argv: Optional[Sequence[str]] = None) -> int:
  logging.set_verbosity(logging.INFO)
  parser = _build_parser()
  args = parser.parse_args(sys.argv[1:] if argv is None else list(argv))
  try:
    settings = settings_from_args(args)
  except ValueError as error:
    parser.error(str(error))
  config = (config_lib.load(args.config) if args.config
            else config_lib.PipelineConfig())
  catalog_size = args.catalog_size or read_catalog_size(settings.examples_dir)
  output_path = args.output or f"{config.pipeline_name}.json"

  written = compile_pipeline(config, settings, catalog_size, output_path)
  print(f"Compiled pipeline '{config.pipeline_name}' to {written} "
        f"(catalog size {catalog_size}, gate map@"
        f"{config.evaluation.gated_k(catalog_size)}).")
  if args.submit:
    job_name = submit_pipeline(config, settings, written)
    print(f"Submitted pipeline job {job_name}.")
  return 0


if __name__ == "__main__":
  sys.exit(main())
