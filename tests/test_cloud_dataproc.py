"""Tests of the Dataproc request builders, CLI and package zip (no network)."""

import datetime
import io
import json
import os
import re
import subprocess
import sys
import zipfile
from contextlib import redirect_stdout

import pytest

from cloud import dataproc
from cloud import packaging

_FILES = dataproc.JobFiles(
    main_python_file_uri="gs://my-bucket/staging/job-1/make_examples.py",
    python_file_uris=("gs://my-bucket/staging/job-1/make_examples_packages.zip",),
)
_JOB_ARGS = ["--input", "gs://my-bucket/data/ratings.csv",
             "--output", "gs://my-bucket/examples/run1", "--layout", "amazon"]


# ---------------------------------------------------------------- batch


def test_batch_request_fields():
    request = dataproc.build_batch_request(
        project="my-project",
        region="europe-west4",
        batch_id="make-examples-1",
        files=_FILES,
        job_args=_JOB_ARGS,
        resources=dataproc.SparkResources(
            executor_cores=8, executor_memory="16g", executor_instances=3),
        properties={"spark.dynamicAllocation.maxExecutors": "20"},
        service_account="spark@my-project.iam.gserviceaccount.com",
        staging_bucket="my-bucket",
        subnetwork_uri="projects/my-project/regions/europe-west4/subnetworks/s1",
        labels={"team": "recs"},
        request_id="fixed-request-id",
    )

    assert request.parent == "projects/my-project/locations/europe-west4"
    assert request.batch_id == "make-examples-1"
    assert request.request_id == "fixed-request-id"
    batch = request.batch
    assert batch.pyspark_batch.main_python_file_uri == _FILES.main_python_file_uri
    assert list(batch.pyspark_batch.python_file_uris) == list(_FILES.python_file_uris)
    assert list(batch.pyspark_batch.args) == _JOB_ARGS
    assert batch.runtime_config.version == "2.2"
    assert dict(batch.runtime_config.properties) == {
        "spark.executor.cores": "8",
        "spark.executor.memory": "16g",
        "spark.executor.instances": "3",
        "spark.dynamicAllocation.maxExecutors": "20",
    }
    execution = batch.environment_config.execution_config
    assert execution.service_account == "spark@my-project.iam.gserviceaccount.com"
    assert execution.staging_bucket == "my-bucket"
    assert execution.subnetwork_uri.endswith("/subnetworks/s1")
    assert dict(batch.labels) == {"team": "recs"}


def test_batch_request_defaults():
    request = dataproc.build_batch_request(
        project="my-project", region="us-central1", batch_id="abcd",
        files=_FILES, job_args=_JOB_ARGS)

    batch = request.batch
    assert dict(batch.runtime_config.properties) == {}
    assert batch.runtime_config.version == dataproc.DEFAULT_RUNTIME_VERSION
    execution = batch.environment_config.execution_config
    assert execution.service_account == ""
    # Neither member of the network oneof is selected, so Dataproc uses the
    # default network.
    assert dataproc.dataproc_v1.ExecutionConfig.pb(execution).WhichOneof(
        "network") is None
    assert re.fullmatch(r"[0-9a-f]{32}", request.request_id)


def test_batch_request_properties_override_resources():
    request = dataproc.build_batch_request(
        project="my-project", region="us-central1", batch_id="abcd",
        files=_FILES, job_args=_JOB_ARGS,
        resources=dataproc.SparkResources(executor_cores=4),
        properties={"spark.executor.cores": "16"})

    assert request.batch.runtime_config.properties["spark.executor.cores"] == "16"


@pytest.mark.parametrize("batch_id", ["abc", "Upper-case", "under_score",
                                      "x" * 64, ""])
def test_batch_request_invalid_id(batch_id):
    with pytest.raises(ValueError, match="Invalid batch id"):
        dataproc.build_batch_request(
            project="p-123456", region="us-central1", batch_id=batch_id,
            files=_FILES, job_args=[])


def test_batch_request_rejects_gs_staging_bucket():
    with pytest.raises(ValueError, match="without gs://"):
        dataproc.build_batch_request(
            project="p-123456", region="us-central1", batch_id="abcd",
            files=_FILES, job_args=[], staging_bucket="gs://my-bucket")


@pytest.mark.parametrize("region", ["", "global", "europe_west4", "US-CENTRAL1",
                                    "us-central1-a"])
def test_invalid_region(region):
    with pytest.raises(ValueError, match="Invalid region"):
        dataproc.build_batch_request(
            project="p-123456", region=region, batch_id="abcd", files=_FILES,
            job_args=[])


def test_missing_project():
    with pytest.raises(ValueError, match="Missing project"):
        dataproc.build_cluster_job_request(
            project="", region="us-central1", cluster="c", job_id="j",
            files=_FILES, job_args=[])


# ---------------------------------------------------------------- cluster


def test_cluster_job_request_fields():
    request = dataproc.build_cluster_job_request(
        project="my-project",
        region="europe-west4",
        cluster="recs-cluster",
        job_id="make_examples-1",
        files=_FILES,
        job_args=_JOB_ARGS,
        resources=dataproc.SparkResources(executor_memory="4096m"),
        properties={"spark.sql.shuffle.partitions": "64"},
        labels={"run": "r1"},
        request_id="rid",
    )

    assert request.project_id == "my-project"
    assert request.region == "europe-west4"
    assert request.request_id == "rid"
    job = request.job
    assert job.reference.project_id == "my-project"
    assert job.reference.job_id == "make_examples-1"
    assert job.placement.cluster_name == "recs-cluster"
    assert job.pyspark_job.main_python_file_uri == _FILES.main_python_file_uri
    assert list(job.pyspark_job.python_file_uris) == list(_FILES.python_file_uris)
    assert list(job.pyspark_job.args) == _JOB_ARGS
    assert dict(job.pyspark_job.properties) == {
        "spark.executor.memory": "4096m",
        "spark.sql.shuffle.partitions": "64",
    }
    assert dict(job.labels) == {"run": "r1"}


@pytest.mark.parametrize("job_id", ["has space", "dot.ted", "x" * 101, ""])
def test_cluster_job_invalid_id(job_id):
    with pytest.raises(ValueError, match="Invalid job id"):
        dataproc.build_cluster_job_request(
            project="p-123456", region="us-central1", cluster="c",
            job_id=job_id, files=_FILES, job_args=[])


def test_cluster_job_missing_cluster():
    with pytest.raises(ValueError, match="Missing cluster name"):
        dataproc.build_cluster_job_request(
            project="p-123456", region="us-central1", cluster="", job_id="j",
            files=_FILES, job_args=[])


# ---------------------------------------------------------------- helpers


@pytest.mark.parametrize("kwargs, message", [
    ({"executor_cores": 0}, "executor_cores must be at least 1"),
    ({"executor_instances": -1}, "executor_instances must be at least 1"),
    ({"executor_memory": "8 GB"}, "Spark size"),
    ({"executor_memory": "lots"}, "Spark size"),
])
def test_spark_resources_invalid(kwargs, message):
    with pytest.raises(ValueError, match=message):
        dataproc.SparkResources(**kwargs)


def test_spark_resources_omits_unset():
    assert dataproc.SparkResources().to_properties() == {}
    assert dataproc.SparkResources(executor_instances=2).to_properties() == {
        "spark.executor.instances": "2"}


def test_regional_endpoint():
    assert dataproc.regional_endpoint("europe-west4") == \
        "europe-west4-dataproc.googleapis.com:443"
    options = dataproc.client_options("us-central1")
    assert options.api_endpoint == "us-central1-dataproc.googleapis.com:443"


def test_staged_job_files_layout():
    files = dataproc.staged_job_files("gs://b1b/staging/", "job-7")

    assert files.main_python_file_uri == "gs://b1b/staging/job-7/make_examples.py"
    assert files.python_file_uris == (
        "gs://b1b/staging/job-7/make_examples_packages.zip",)


def test_default_job_id_is_valid_for_both_modes():
    now = datetime.datetime(2024, 1, 31, 23, 59, 58,
                            tzinfo=datetime.timezone.utc)

    job_id = dataproc.default_job_id(now)

    assert re.fullmatch(r"make-examples-20240131-235958-[0-9a-f]{4}", job_id)
    assert dataproc._BATCH_ID.match(job_id)
    assert dataproc._JOB_ID.match(job_id)


def test_split_job_args():
    own, job = dataproc.split_job_args(
        ["batch", "--dry-run", "--", "--input", "x", "--", "y"])

    assert own == ["batch", "--dry-run"]
    assert job == ["--input", "x", "--", "y"]
    assert dataproc.split_job_args(["batch"]) == (["batch"], [])


def test_request_to_json_round_trips():
    request = dataproc.build_batch_request(
        project="my-project", region="us-central1", batch_id="abcd",
        files=_FILES, job_args=_JOB_ARGS, request_id="r")

    parsed = json.loads(dataproc.request_to_json(request))

    assert parsed["batchId"] == "abcd"
    assert parsed["batch"]["pysparkBatch"]["args"] == _JOB_ARGS
    assert dataproc.dataproc_v1.CreateBatchRequest.from_json(
        dataproc.request_to_json(request)) == request


# ---------------------------------------------------------------- command line


def _run_cli(argv):
    output = io.StringIO()
    with redirect_stdout(output):
        status = dataproc.main(argv)
    return status, output.getvalue()


def test_cli_batch_dry_run():
    status, output = _run_cli([
        "batch", "--project", "my-project", "--region", "europe-west4",
        "--staging-uri", "gs://my-bucket/staging", "--job-id", "run-0001",
        "--executor-cores", "4", "--executor-memory", "8g",
        "--executor-instances", "2", "--service-account",
        "spark@my-project.iam.gserviceaccount.com",
        "--property", "spark.sql.shuffle.partitions=32", "--label", "team=recs",
        "--dry-run", "--", *_JOB_ARGS])

    assert status == 0
    request = json.loads(output)
    batch = request["batch"]
    assert request["parent"] == "projects/my-project/locations/europe-west4"
    assert request["batchId"] == "run-0001"
    assert batch["pysparkBatch"]["mainPythonFileUri"] == \
        "gs://my-bucket/staging/run-0001/make_examples.py"
    assert batch["pysparkBatch"]["pythonFileUris"] == [
        "gs://my-bucket/staging/run-0001/make_examples_packages.zip"]
    assert batch["pysparkBatch"]["args"] == _JOB_ARGS
    assert batch["runtimeConfig"]["version"] == "2.2"
    assert batch["runtimeConfig"]["properties"] == {
        "spark.executor.cores": "4",
        "spark.executor.memory": "8g",
        "spark.executor.instances": "2",
        "spark.sql.shuffle.partitions": "32",
    }
    assert batch["environmentConfig"]["executionConfig"] == {
        "serviceAccount": "spark@my-project.iam.gserviceaccount.com",
        "stagingBucket": "my-bucket",
    }
    assert batch["labels"] == {"team": "recs"}


def test_cli_cluster_dry_run():
    status, output = _run_cli([
        "cluster", "--project", "my-project", "--region", "us-central1",
        "--cluster", "recs", "--staging-uri", "gs://my-bucket/staging",
        "--job-id", "run_2", "--dry-run", "--", *_JOB_ARGS])

    assert status == 0
    request = json.loads(output)
    assert request["projectId"] == "my-project"
    assert request["region"] == "us-central1"
    job = request["job"]
    assert job["placement"]["clusterName"] == "recs"
    assert job["reference"]["jobId"] == "run_2"
    assert job["pysparkJob"]["args"] == _JOB_ARGS
    assert job["pysparkJob"]["mainPythonFileUri"] == \
        "gs://my-bucket/staging/run_2/make_examples.py"
    assert "properties" not in job["pysparkJob"]


@pytest.mark.parametrize("job_args, message", [
    (["--input", "/local/ratings.csv", "--output", "gs://b1b/out"],
     "--input '/local/ratings.csv' must be a gs:// URI"),
    (["--input", "gs://b1b/r.csv", "--output", "out/"],
     "--output 'out/' must be a gs:// URI"),
])
def test_cli_rejects_local_job_paths(job_args, message, capsys):
    with pytest.raises(SystemExit) as raised:
        dataproc.main(["batch", "--project", "my-project", "--region",
                       "us-central1", "--staging-uri", "gs://b1b/s",
                       "--dry-run", "--", *job_args])

    assert raised.value.code == 2
    assert message in capsys.readouterr().err


def test_cli_rejects_unknown_job_flag(capsys):
    with pytest.raises(SystemExit) as raised:
        dataproc.main(["batch", "--project", "my-project", "--region",
                       "us-central1", "--staging-uri", "gs://b1b/s", "--dry-run",
                       "--", "--input", "gs://b1b/r.csv", "--output",
                       "gs://b1b/o", "--no-such-flag"])

    assert raised.value.code == 2
    assert "--no-such-flag" in capsys.readouterr().err


def test_cli_requires_job_args(capsys):
    with pytest.raises(SystemExit) as raised:
        dataproc.main(["batch", "--project", "my-project", "--region",
                       "us-central1", "--staging-uri", "gs://b1b/s",
                       "--dry-run"])

    assert raised.value.code == 2
    assert "put make_examples.py flags after --" in capsys.readouterr().err


def test_cli_cluster_requires_cluster_name(capsys):
    with pytest.raises(SystemExit):
        dataproc.main(["cluster", "--project", "my-project", "--region",
                       "us-central1", "--staging-uri", "gs://b1b/s",
                       "--dry-run", "--", *_JOB_ARGS])

    assert "--cluster" in capsys.readouterr().err


# ---------------------------------------------------------------- package zip


def test_package_zip_contents(tmp_path):
    path = packaging.build_package_zip(str(tmp_path / "packages.zip"))

    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
    assert "spark/__init__.py" in names
    assert "spark/make_examples.py" in names
    assert "schemas/__init__.py" in names
    assert "schemas/features.py" in names
    # Executors write gs:// output through cloud.paths.
    assert "cloud/paths.py" in names
    assert not any("__pycache__" in name or name.endswith(".pyc")
                   for name in names)
    assert not any(name.startswith(("tests/", "trainer/"))
                   for name in names)
    assert names == sorted(names)


def test_package_zip_is_reproducible(tmp_path):
    first = packaging.build_package_zip(str(tmp_path / "a.zip"))
    second = packaging.build_package_zip(str(tmp_path / "b.zip"))

    with open(first, "rb") as file_a, open(second, "rb") as file_b:
        assert file_a.read() == file_b.read()


def test_package_zip_imports(tmp_path):
    # The zip must work as a --py-files entry: importable from sys.path.
    path = packaging.build_package_zip(str(tmp_path / "packages.zip"))
    code = ("import schemas.features, spark.config; "
            "print(spark.config.__file__)")
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path,
                            env={"PYTHONPATH": path,
                                 "PATH": os.environ.get("PATH", "")},
                            capture_output=True, text=True, timeout=120)

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().startswith(path)


def test_package_zip_missing_package(tmp_path):
    with pytest.raises(ValueError, match="__init__.py not found"):
        packaging.build_package_zip(str(tmp_path / "x.zip"),
                                    packages=("no_such_package",))
