"""Tests of pipeline/vertex_runner.py: the compiled Vertex AI pipeline JSON.

Compiling is offline: while the pipeline compiles, a guard fails every
Python socket connection to an address other than the loopback. Native code
that opens its own sockets, such as TensorFlow's file systems, is not
covered by it. No test submits a pipeline.
"""

import ipaddress
import json
import os
import socket
import subprocess
import sys

import pytest

from pipeline import config as config_lib
from pipeline import vertex_runner
from trainer import hyperparameters as hyperparameters_lib
# The Cloud Storage emulator fixtures of the storage tests.
from tests.test_cloud_storage import bucket  # noqa: F401  pylint: disable=unused-import
from tests.test_cloud_storage import client  # noqa: F401  pylint: disable=unused-import
from tests.test_cloud_storage import emulator_env  # noqa: F401  pylint: disable=unused-import
from tests.test_cloud_storage import emulator_url  # noqa: F401  pylint: disable=unused-import

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROJECT = "test-project"
REGION = "europe-west4"
IMAGE = "europe-west4-docker.pkg.dev/test-project/recs/pipeline:abc123"
SERVICE_ACCOUNT = "recs-pipeline@test-project.iam.gserviceaccount.com"
PIPELINE_ROOT = "gs://test-bucket/pipeline_root"
EXAMPLES_DIR = "gs://test-bucket/examples/run1"
SERVING_ROOT = "gs://test-bucket/serving"
# The Luxury Beauty catalog: reference K = 12,120 // 50 = 242.
CATALOG_SIZE = 12_120
GATE_METRIC = "map@242"
MAP_FLOOR = 0.02
MAX_MAP_REGRESSION = 0.005

TRAINER_EXECUTOR = (
    "tfx.extensions.google_cloud_ai_platform.trainer.executor.GenericExecutor")
VERTEX_PUSHER_EXECUTOR = (
    "tfx.extensions.google_cloud_ai_platform.pusher.executor.Executor")
RESOLVER_TASKS = {
    "latest_blessed_model_resolver-model-resolver",
    "latest_blessed_model_resolver-model-blessing-resolver",
}
# Tasks whose executor runs a container. The resolver tasks are queries that
# Vertex AI resolves against its metadata store.
CONTAINER_TASKS = {
    "ImportExampleGen", "HoldoutExampleGen", "StatisticsGen",
    "ImportSchemaGen", "HoldoutSchemaGen", "ExampleValidator",
    "AnomaliesGate", "Transform", "Trainer", "Evaluator", "Pusher",
}
BEAM_TASKS = ("ImportExampleGen", "HoldoutExampleGen", "StatisticsGen",
              "Transform", "Evaluator")


def _is_loopback(host) -> bool:
  if host == "localhost":
    return True
  try:
    return ipaddress.ip_address(host).is_loopback
  except ValueError:
    return False


@pytest.fixture(scope="module")
def offline():
  """Fail every socket connection to a host other than the loopback."""
  real_connect = socket.socket.connect
  real_connect_ex = socket.socket.connect_ex

  def check(sock, address):
    if sock.family in (socket.AF_INET, socket.AF_INET6):
      if not _is_loopback(address[0]):
        raise AssertionError(f"network connection to {address} while "
                             "compiling")

  def connect(sock, address):
    check(sock, address)
    return real_connect(sock, address)

  def connect_ex(sock, address):
    check(sock, address)
    return real_connect_ex(sock, address)

  with pytest.MonkeyPatch.context() as patch:
    patch.setattr(socket.socket, "connect", connect)
    patch.setattr(socket.socket, "connect_ex", connect_ex)
    # google-auth skips its Compute Engine metadata probe with this set.
    patch.setenv("NO_GCE_CHECK", "true")
    yield


def _settings(**overrides) -> vertex_runner.VertexSettings:
  values = dict(project=PROJECT, region=REGION, image=IMAGE,
                pipeline_root=PIPELINE_ROOT, examples_dir=EXAMPLES_DIR,
                serving_root=SERVING_ROOT, service_account=SERVICE_ACCOUNT)
  values.update(overrides)
  return vertex_runner.VertexSettings(**values)


def _config() -> config_lib.PipelineConfig:
  return config_lib.from_dict({
      "pipeline_name": "candidate-generation-test",
      "evaluation": {"map_floor": MAP_FLOOR,
                     "max_map_regression": MAX_MAP_REGRESSION},
  })


def _compile(directory, settings) -> dict:
  path = vertex_runner.compile_pipeline(
      _config(), settings, CATALOG_SIZE, os.path.join(directory, "out.json"))
  with open(path, encoding="utf-8") as pipeline_file:
    return json.load(pipeline_file)


@pytest.fixture(scope="module")
def compiled(offline, tmp_path_factory):  # pylint: disable=unused-argument
  return _compile(tmp_path_factory.mktemp("vertex"), _settings())


@pytest.fixture(scope="module")
def endpoint_compiled(offline, tmp_path_factory):  # pylint: disable=unused-argument
  settings = _settings(serving_root=None, endpoint_name="candidates")
  return _compile(tmp_path_factory.mktemp("vertex_endpoint"), settings)


def _tasks(spec: dict) -> dict:
  return spec["pipelineSpec"]["root"]["dag"]["tasks"]


def _executor(spec: dict, task: str) -> dict:
  executors = spec["pipelineSpec"]["deploymentSpec"]["executors"]
  return executors[f"{task}_executor"]


def _parameter(spec: dict, task: str, name: str) -> str:
  parameters = _tasks(spec)[task]["inputs"]["parameters"]
  return parameters[name]["runtimeValue"]["constantValue"]["stringValue"]


def _custom_config(spec: dict, task: str) -> dict:
  return json.loads(_parameter(spec, task, "custom_config"))


# ------------------------------------------------------------ components


def test_every_component_present(compiled):
  assert set(_tasks(compiled)) == CONTAINER_TASKS | RESOLVER_TASKS


def test_every_executor_runs_project_image(compiled):
  for task in CONTAINER_TASKS:
    container = _executor(compiled, task)["container"]
    assert container["image"] == IMAGE, task


def test_resolver_tasks_are_metadata_queries(compiled):
  for task in RESOLVER_TASKS:
    assert "resolver" in _executor(compiled, task), task


def test_anomalies_gate_runs_in_project_image(compiled):
  container = _executor(compiled, "AnomaliesGate")["container"]
  assert container["image"] == IMAGE
  args = container["args"]
  executor_class = args[args.index("--executor_class_path") + 1]
  assert executor_class == "pipeline.anomalies_gate.AnomaliesGate_Executor"


def test_anomalies_gate_runs_before_transform(compiled):
  tasks = _tasks(compiled)
  assert "ExampleValidator" in tasks["AnomaliesGate"]["dependentTasks"]
  assert "AnomaliesGate" in tasks["Transform"]["dependentTasks"]


def test_schemas_read_inside_image(compiled):
  assert (_parameter(compiled, "ImportSchemaGen", "schema_file") ==
          "/pipeline/schemas/schema.pbtxt")
  assert (_parameter(compiled, "HoldoutSchemaGen", "schema_file") ==
          "/pipeline/schemas/holdout_schema.pbtxt")


def test_pipeline_root_is_gcs(compiled):
  assert (compiled["runtimeConfig"]["gcsOutputDirectory"] == PIPELINE_ROOT)


def test_examples_read_from_gcs(compiled):
  for task in ("ImportExampleGen", "HoldoutExampleGen"):
    assert _parameter(compiled, task, "input_base") == EXAMPLES_DIR


# -------------------------------------------------------------- Dataflow


def test_beam_components_run_on_dataflow(compiled):
  expected = [
      "--runner=DataflowRunner",
      f"--project={PROJECT}",
      f"--region={REGION}",
      f"--temp_location={PIPELINE_ROOT}/dataflow-tmp",
      f"--machine_type={vertex_runner.DEFAULT_DATAFLOW_MACHINE_TYPE}",
      f"--max_num_workers={vertex_runner.DEFAULT_DATAFLOW_MAX_WORKERS}",
      f"--sdk_container_image={IMAGE}",
      f"--service_account_email={SERVICE_ACCOUNT}",
  ]
  for task in BEAM_TASKS:
    args = _executor(compiled, task)["container"]["args"]
    for option in expected:
      assert option in args, (task, option)


def test_dataflow_options_override_defaults():
  settings = _settings(dataflow_region="us-central1",
                       dataflow_temp_location="gs://other-bucket/tmp",
                       dataflow_machine_type="n2-standard-8",
                       dataflow_max_workers=3, service_account=None,
                       extra_beam_args=("--subnetwork=regions/x/y",))
  args = vertex_runner.dataflow_beam_args(settings)
  assert "--region=us-central1" in args
  assert "--temp_location=gs://other-bucket/tmp" in args
  assert "--machine_type=n2-standard-8" in args
  assert "--max_num_workers=3" in args
  assert not any(arg.startswith("--service_account_email") for arg in args)
  assert args[-1] == "--subnetwork=regions/x/y"


# --------------------------------------------------------------- Trainer


def test_trainer_uses_vertex_extension(compiled):
  args = _executor(compiled, "Trainer")["container"]["args"]
  assert args[args.index("--executor_class_path") + 1] == TRAINER_EXECUTOR


def test_trainer_custom_job_has_gpu(compiled):
  from tfx import v1 as tfx  # pylint: disable=g-import-not-at-top

  cloud = tfx.extensions.google_cloud_ai_platform
  custom_config = _custom_config(compiled, "Trainer")
  assert custom_config[cloud.ENABLE_VERTEX_KEY] is True
  assert custom_config[cloud.VERTEX_REGION_KEY] == REGION
  job = custom_config[cloud.TRAINING_ARGS_KEY]
  assert job["project"] == PROJECT
  assert job["job_spec"]["service_account"] == SERVICE_ACCOUNT
  pools = job["job_spec"]["worker_pool_specs"]
  assert len(pools) == 1
  assert pools[0]["replica_count"] == 1
  assert pools[0]["machine_spec"] == {
      "machine_type": "n1-standard-8",
      "accelerator_type": "NVIDIA_TESLA_T4",
      "accelerator_count": 1,
  }
  assert pools[0]["container_spec"] == {"image_uri": IMAGE}


def test_trainer_hyperparameters_survive_cloud_keys(compiled):
  custom_config = _custom_config(compiled, "Trainer")
  params = hyperparameters_lib.Hyperparameters.from_custom_config(
      hyperparameters_lib.without_cloud_trainer_keys(custom_config))
  # The Evaluator's largest cut-off: the reference K of the catalog.
  assert params.evaluation_k == 242


def test_trainer_accelerator_settings():
  job = vertex_runner.training_job_args(
      _settings(trainer_machine_type="a2-highgpu-1g",
                accelerator_type="NVIDIA_TESLA_A100", accelerator_count=2))
  machine = job["job_spec"]["worker_pool_specs"][0]["machine_spec"]
  assert machine == {"machine_type": "a2-highgpu-1g",
                     "accelerator_type": "NVIDIA_TESLA_A100",
                     "accelerator_count": 2}


def test_trainer_zero_accelerators_on_cpu():
  job = vertex_runner.training_job_args(
      _settings(accelerator_count=0, service_account=None))
  machine = job["job_spec"]["worker_pool_specs"][0]["machine_spec"]
  assert machine == {"machine_type": "n1-standard-8"}
  assert "service_account" not in job["job_spec"]


# ------------------------------------------------------ Evaluator, Pusher


def test_evaluator_gates_on_map_at_reference_k(compiled):
  eval_config = json.loads(_parameter(compiled, "Evaluator", "eval_config"))
  (metrics_spec,) = eval_config["metrics_specs"]
  threshold = metrics_spec["thresholds"][GATE_METRIC]
  assert threshold["value_threshold"]["lower_bound"] == MAP_FLOOR
  assert threshold["change_threshold"]["absolute"] == -MAX_MAP_REGRESSION
  assert threshold["change_threshold"]["direction"] == "HIGHER_IS_BETTER"


def test_evaluator_ranking_metric_module(compiled):
  eval_config = json.loads(_parameter(compiled, "Evaluator", "eval_config"))
  metrics = eval_config["metrics_specs"][0]["metrics"]
  ranking = [metric for metric in metrics
             if metric["class_name"] == "RankingMetrics"]
  assert len(ranking) == 1
  assert ranking[0]["module"] == "evaluation.tfma_metrics"
  assert 242 in json.loads(ranking[0]["config"])["top_k_list"]


def test_evaluator_compares_with_latest_blessed(compiled):
  tasks = _tasks(compiled)
  baseline = tasks["Evaluator"]["inputs"]["artifacts"]["baseline_model"]
  producer = baseline["taskOutputArtifact"]["producerTask"]
  assert producer == "latest_blessed_model_resolver-model-resolver"


def test_pusher_writes_to_serving_root(compiled):
  destination = json.loads(_parameter(compiled, "Pusher", "push_destination"))
  assert destination == {"filesystem": {"base_directory": SERVING_ROOT}}


def test_pusher_uploads_to_vertex_endpoint(endpoint_compiled):
  from tfx import v1 as tfx  # pylint: disable=g-import-not-at-top

  cloud = tfx.extensions.google_cloud_ai_platform
  args = _executor(endpoint_compiled, "Pusher")["container"]["args"]
  assert args[args.index("--executor_class_path") + 1] == (
      VERTEX_PUSHER_EXECUTOR)
  custom_config = _custom_config(endpoint_compiled, "Pusher")
  assert custom_config[cloud.ENABLE_VERTEX_KEY] is True
  assert custom_config[cloud.VERTEX_REGION_KEY] == REGION
  assert custom_config[cloud.VERTEX_CONTAINER_IMAGE_URI_KEY] == (
      vertex_runner.DEFAULT_SERVING_IMAGE)
  assert custom_config[cloud.SERVING_ARGS_KEY] == {
      "project_id": PROJECT,
      "endpoint_name": "candidates",
      "machine_type": vertex_runner.DEFAULT_SERVING_MACHINE_TYPE,
  }


# -------------------------------------------------------------- settings


@pytest.mark.parametrize("overrides, message", [
    ({"pipeline_root": "/tmp/root"}, "pipeline_root must be a gs:// URI"),
    ({"examples_dir": "runs/examples"}, "examples_dir must be a gs:// URI"),
    ({"serving_root": "serving"}, "serving_root must be a gs:// URI"),
    ({"dataflow_temp_location": "/tmp"},
     "dataflow_temp_location must be a gs:// URI"),
    ({"pipeline_root": "gs://b/root"}, "invalid pipeline_root"),
    ({"endpoint_name": "candidates"}, "exactly one push target"),
    ({"serving_root": None}, "exactly one push target"),
    ({"project": ""}, "project is required"),
    ({"image": ""}, "image is required"),
    ({"accelerator_type": "NVIDIA_TESLA_T5"}, "unknown accelerator type"),
    ({"accelerator_count": -1}, "accelerator_count must be 0 or more"),
    ({"dataflow_max_workers": 0}, "dataflow_max_workers must be at least 1"),
])
def test_settings_reject_invalid(overrides, message):
  with pytest.raises(ValueError, match=message):
    _settings(**overrides)


def test_cli_requires_push_target(capsys):
  with pytest.raises(SystemExit):
    vertex_runner.main([
        "--project", PROJECT, "--region", REGION, "--image", IMAGE,
        "--pipeline-root", PIPELINE_ROOT, "--examples-dir", EXAMPLES_DIR,
        "--catalog-size", "100"])
  assert "--serving-root" in capsys.readouterr().err


def test_cli_rejects_local_pipeline_root(capsys):
  with pytest.raises(SystemExit):
    vertex_runner.main([
        "--project", PROJECT, "--region", REGION, "--image", IMAGE,
        "--pipeline-root", "runs/tfx", "--examples-dir", EXAMPLES_DIR,
        "--serving-root", SERVING_ROOT, "--catalog-size", "100"])
  assert "expected a gs:// URI" in capsys.readouterr().err


def test_cli_compiles_with_config_file(offline, tmp_path, capsys):  # pylint: disable=unused-argument
  config_path = tmp_path / "run.json"
  config_path.write_text(json.dumps({
      "pipeline_name": "from-config-file",
      "evaluation": {"map_floor": 0.03},
  }))
  output = tmp_path / "compiled" / "pipeline.json"
  status = vertex_runner.main([
      "--config", str(config_path),
      "--project", PROJECT, "--region", REGION, "--image", IMAGE,
      "--pipeline-root", PIPELINE_ROOT, "--examples-dir", EXAMPLES_DIR,
      "--serving-root", SERVING_ROOT, "--catalog-size", "5000",
      "--accelerator-type", "NVIDIA_L4", "--accelerator-count", "2",
      "--output", str(output)])
  assert status == 0
  assert "gate map@100" in capsys.readouterr().out
  spec = json.loads(output.read_text())
  assert spec["pipelineSpec"]["pipelineInfo"]["name"] == "from-config-file"
  eval_config = json.loads(_parameter(spec, "Evaluator", "eval_config"))
  # 5,000 items: reference K = 100.
  threshold = eval_config["metrics_specs"][0]["thresholds"]["map@100"]
  assert threshold["value_threshold"]["lower_bound"] == 0.03
  from tfx import v1 as tfx  # pylint: disable=g-import-not-at-top
  job = _custom_config(spec, "Trainer")[
      tfx.extensions.google_cloud_ai_platform.TRAINING_ARGS_KEY]
  machine = job["job_spec"]["worker_pool_specs"][0]["machine_spec"]
  assert machine["accelerator_type"] == "NVIDIA_L4"
  assert machine["accelerator_count"] == 2


# ---------------------------------------------------------- catalog size


def test_read_catalog_size_local(tmp_path):
  (tmp_path / "summary.json").write_text(json.dumps({"catalog_items": 321}))
  assert vertex_runner.read_catalog_size(str(tmp_path)) == 321


def test_read_catalog_size_missing_summary(tmp_path):
  with pytest.raises(FileNotFoundError, match="run the Spark example job"):
    vertex_runner.read_catalog_size(str(tmp_path))


def test_read_catalog_size_without_entry(tmp_path):
  (tmp_path / "summary.json").write_text(json.dumps({"items": 3}))
  with pytest.raises(ValueError, match="no 'catalog_items' entry"):
    vertex_runner.read_catalog_size(str(tmp_path))


def test_read_catalog_size_invalid_json(tmp_path):
  (tmp_path / "summary.json").write_text("{")
  with pytest.raises(ValueError, match="not valid JSON"):
    vertex_runner.read_catalog_size(str(tmp_path))


def test_read_catalog_size_from_emulator(client, bucket):  # pylint: disable=redefined-outer-name
  client.bucket(bucket).blob("examples/run1/summary.json").upload_from_string(
      json.dumps({"catalog_items": 12120}))
  examples_dir = f"gs://{bucket}/examples/run1"
  assert vertex_runner.read_catalog_size(examples_dir) == CATALOG_SIZE


def test_read_catalog_size_emulator_missing(client, bucket):  # pylint: disable=redefined-outer-name,unused-argument
  with pytest.raises(FileNotFoundError, match="summary.json not found"):
    vertex_runner.read_catalog_size(f"gs://{bucket}/examples/none")


# ---------------------------------------------------------------- submit


def test_submit_without_credentials_raises(tmp_path):
  # A fresh interpreter: google-auth reads the metadata-server variables at
  # import time. They point at a closed loopback port, NO_GCE_CHECK skips the
  # Compute Engine probe, and HOME hides any gcloud login, so no credentials
  # are found and nothing reaches Vertex AI.
  with socket.socket() as probe:
    probe.bind(("127.0.0.1", 0))
    closed = f"127.0.0.1:{probe.getsockname()[1]}"
  env = {
      "PATH": os.environ.get("PATH", ""),
      "HOME": str(tmp_path),
      "CLOUDSDK_CONFIG": str(tmp_path / "gcloud"),
      "NO_GCE_CHECK": "true",
      "GCE_METADATA_HOST": closed,
      "GCE_METADATA_IP": closed,
      "PYTHONPATH": REPO_ROOT,
      "TF_USE_LEGACY_KERAS": "1",
  }
  code = (
      "from pipeline import config, vertex_runner\n"
      "settings = vertex_runner.VertexSettings(\n"
      f"    project={PROJECT!r}, region={REGION!r}, image={IMAGE!r},\n"
      f"    pipeline_root={PIPELINE_ROOT!r}, examples_dir={EXAMPLES_DIR!r},\n"
      f"    serving_root={SERVING_ROOT!r})\n"
      "vertex_runner.submit_pipeline(config.PipelineConfig(), settings,\n"
      "                              'pipeline.json')\n")
  result = subprocess.run([sys.executable, "-c", code], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
  assert result.returncode != 0
  assert "CredentialsNotFoundError" in result.stderr
  assert "gcloud auth application-default login" in result.stderr
  assert "compiled to pipeline.json but not submitted" in result.stderr

