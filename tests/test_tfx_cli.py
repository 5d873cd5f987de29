"""Tests of the runner files with the real TFX CLI (`tfx pipeline create`).

The CLI runs a runner file as `__main__` with its DagRunner's `run()`
patched: the local engine records the pipeline without running it, and the
Vertex AI engine compiles it. Both store what they record below
`$HOME/tfx/<engine>/<pipeline name>/`, so every test uses its own HOME.
Nothing here submits or runs a pipeline.
"""

import json
import os
import socket
import subprocess
import sys

import pytest

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PIPELINE_NAME = "cli-test"
IMAGE = "europe-west4-docker.pkg.dev/test-project/recs/pipeline:abc123"
# Seconds for one CLI command; it imports TensorFlow and TFX.
CLI_TIMEOUT_S = 300


def _tfx_command():
  script = os.path.join(os.path.dirname(sys.executable), "tfx")
  if os.path.exists(script):
    return [script]
  return [sys.executable, "-m", "tfx.tools.cli.cli_main"]


def _closed_loopback_address() -> str:
  with socket.socket() as probe:
    probe.bind(("127.0.0.1", 0))
    return f"127.0.0.1:{probe.getsockname()[1]}"


def _cli_env(home, **extra):
  """Return an environment with a fresh HOME and no Google credentials."""
  env = {
      key: value for key, value in os.environ.items()
      if key not in ("LOCAL_HOME", "VERTEX_HOME",
                     "GOOGLE_APPLICATION_CREDENTIALS")
  }
  closed = _closed_loopback_address()
  env.update({
      # The CLI checks for kfp with the `pip` found on PATH (TFX 1.16,
      # tools/cli/handler/handler_factory.py), so the environment's own
      # scripts go first, as after activating the virtual environment.
      "PATH": os.pathsep.join([os.path.dirname(sys.executable),
                               os.environ.get("PATH", "")]),
      "HOME": str(home),
      "CLOUDSDK_CONFIG": str(home / "gcloud"),
      # google-auth skips its Compute Engine probe, and any metadata request
      # goes to a closed loopback port.
      "NO_GCE_CHECK": "true",
      "GCE_METADATA_HOST": closed,
      "GCE_METADATA_IP": closed,
      "TF_USE_LEGACY_KERAS": "1",
      "PYTHONPATH": REPO_ROOT,
  })
  env.update(extra)
  return env


def _run_cli(args, env, cwd):
  return subprocess.run(_tfx_command() + args, env=env, cwd=cwd,
                        capture_output=True, text=True,
                        timeout=CLI_TIMEOUT_S)


def _write_local_config(tmp_path, examples_dir):
  config_path = tmp_path / "run.json"
  config_path.write_text(json.dumps({
      "pipeline_name": PIPELINE_NAME,
      "output_root": str(tmp_path / "runs"),
      "examples_dir": str(examples_dir),
  }))
  return config_path


def test_local_create_registers_pipeline(tmp_path):
  examples_dir = tmp_path / "examples"
  examples_dir.mkdir()
  (examples_dir / "summary.json").write_text(
      json.dumps({"catalog_items": 500}))
  config_path = _write_local_config(tmp_path, examples_dir)
  home = tmp_path / "home"
  env = _cli_env(home, CANDIDATE_GENERATION_CONFIG=str(config_path))
  runner_file = os.path.join(REPO_ROOT, "local_runner.py")

  result = _run_cli(["pipeline", "create", "--engine", "local",
                     "--pipeline_path", runner_file], env, tmp_path)

  assert result.returncode == 0, result.stderr[-3000:]
  assert f'Pipeline "{PIPELINE_NAME}" created successfully' in result.stdout
  args_path = home / "tfx" / "local" / PIPELINE_NAME / "pipeline_args.json"
  pipeline_args = json.loads(args_path.read_text())
  assert pipeline_args["pipeline_name"] == PIPELINE_NAME
  assert pipeline_args["pipeline_root"] == str(
      tmp_path / "runs" / PIPELINE_NAME / "tfx")
  assert pipeline_args["pipeline_dsl_path"] == runner_file
  # The CLI only records the pipeline: no component has run. Building the
  # pipeline writes the schema copies that ImportSchemaGen reads, nothing
  # else.
  pipeline_root = tmp_path / "runs" / PIPELINE_NAME / "tfx"
  assert sorted(os.listdir(pipeline_root)) == ["schemas"]

  listed = _run_cli(["pipeline", "list", "--engine", "local"], env, tmp_path)
  assert listed.returncode == 0, listed.stderr[-3000:]
  assert PIPELINE_NAME in listed.stdout.split()


def test_local_create_without_examples_fails(tmp_path):
  config_path = _write_local_config(tmp_path, tmp_path / "no_examples")
  home = tmp_path / "home"
  env = _cli_env(home, CANDIDATE_GENERATION_CONFIG=str(config_path))

  result = _run_cli(["pipeline", "create", "--engine", "local",
                     "--pipeline_path",
                     os.path.join(REPO_ROOT, "local_runner.py")],
                    env, tmp_path)

  assert result.returncode != 0
  assert "summary.json not found" in result.stderr
  assert "python -m pipeline.run" in result.stderr
  assert not (home / "tfx" / "local" / PIPELINE_NAME).exists()


def test_vertex_create_compiles_offline(tmp_path):
  flags = (f"--project test-project --region europe-west4 --image {IMAGE} "
           "--pipeline-root gs://test-bucket/pipeline_root "
           "--examples-dir gs://test-bucket/examples/run1 "
           "--serving-root gs://test-bucket/serving --catalog-size 12120")
  config_path = tmp_path / "run.json"
  config_path.write_text(json.dumps({"pipeline_name": PIPELINE_NAME}))
  home = tmp_path / "home"
  env = _cli_env(home, CANDIDATE_GENERATION_VERTEX_FLAGS=(
      f"{flags} --config {config_path}"))

  result = _run_cli(["pipeline", "create", "--engine", "vertex",
                     "--pipeline_path",
                     os.path.join(REPO_ROOT, "vertex_runner.py")],
                    env, tmp_path)

  assert result.returncode == 0, result.stderr[-3000:]
  assert f'Pipeline "{PIPELINE_NAME}" created successfully' in result.stdout
  spec_path = home / "tfx" / "vertex" / PIPELINE_NAME / "pipeline.json"
  spec = json.loads(spec_path.read_text())
  assert spec["pipelineSpec"]["pipelineInfo"]["name"] == PIPELINE_NAME
  executors = spec["pipelineSpec"]["deploymentSpec"]["executors"]
  assert executors["Trainer_executor"]["container"]["image"] == IMAGE
  # The CLI writes its own file in place of --output's default.
  assert not (tmp_path / f"{PIPELINE_NAME}.json").exists()


def test_vertex_runner_file_rejects_submit(tmp_path):
  env = _cli_env(tmp_path / "home",
                 CANDIDATE_GENERATION_VERTEX_FLAGS="--submit")
  result = subprocess.run(
      [sys.executable, os.path.join(REPO_ROOT, "vertex_runner.py")],
      env=env, cwd=tmp_path, capture_output=True, text=True,
      timeout=CLI_TIMEOUT_S)
  assert result.returncode != 0
  assert "Remove --submit" in result.stderr


@pytest.mark.parametrize("engine", ["local", "vertex"])
def test_create_rejects_missing_runner_file(tmp_path, engine):
  result = _run_cli(["pipeline", "create", "--engine", engine,
                     "--pipeline_path", str(tmp_path / "missing.py")],
                    _cli_env(tmp_path / "home"), tmp_path)
  assert result.returncode != 0
  assert "Invalid pipeline path" in result.stderr
