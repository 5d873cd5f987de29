"""Run the Spark example job (`spark/make_examples.py`) on Dataproc.

Two modes are supported:

* `batch`: a Dataproc Serverless batch (`Batch` with a `PySparkBatch`), which
  needs no cluster and is billed per use.
* `cluster`: a job (`Job` with a `PySparkJob`) on an existing Dataproc
  cluster.

Both ship the job the same way: the main file and a zip of the `spark`,
`schemas` and `cloud` packages are uploaded to a staging prefix in Cloud
Storage, and the zip is passed as `python_file_uris` (spark-submit's
`--py-files`). Job flags come after `--` and reach `make_examples.py` unchanged:

    python -m cloud.dataproc batch --project my-project --region europe-west4 \
        --staging-uri gs://my-bucket/staging --dry-run \
        -- --input gs://my-bucket/data/ratings.csv \
           --output gs://my-bucket/examples/run1

`--dry-run` prints the request as JSON (the REST API's field names) and makes
no upload and no API call.
"""

import argparse
import concurrent.futures
import dataclasses
import datetime
import os
import re
import sys
import tempfile
import uuid
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

from absl import logging
from google.api_core import client_options as client_options_lib
from google.api_core import exceptions as api_exceptions
from google.cloud import dataproc_v1
from google.cloud import storage as cloud_storage
from google.protobuf import json_format

from cloud import packaging
from cloud import paths
from cloud import storage

MAIN_FILE = os.path.join(packaging.REPO_ROOT, "spark", "make_examples.py")
PACKAGE_ZIP_NAME = "make_examples_packages.zip"

# Dataproc Serverless runtime 2.2 ships Spark 3.5.1 and Python 3.12 (Dataproc
# Serverless runtime release notes), which matches the project's pyspark 3.5.
# Pinning it keeps a change of Dataproc's default runtime from changing runs.
DEFAULT_RUNTIME_VERSION = "2.2"
DEFAULT_TIMEOUT_S = 3600.0

# ID rules from the google-cloud-dataproc 5.x API reference: batch IDs are 4
# to 63 characters of [a-z0-9-], and job IDs at most 100 characters of
# [A-Za-z0-9_-].
_BATCH_ID = re.compile(r"^[a-z0-9-]{4,63}$")
_JOB_ID = re.compile(r"^[A-Za-z0-9_-]{1,100}$")
# Compute Engine region names such as us-central1 or northamerica-northeast1.
_REGION = re.compile(r"^[a-z]+-[a-z]+[0-9]+$")
# Spark size strings as JavaUtils.byteStringAsBytes parses them: 512m, 4g.
_SPARK_SIZE = re.compile(r"^[0-9]+([kmgtp]b?)?$", re.IGNORECASE)


@dataclasses.dataclass(frozen=True)
class SparkResources:
    """Executor settings, sent as Spark properties; None leaves Dataproc's default.

    Attributes:
        executor_cores: `spark.executor.cores`. Dataproc Serverless accepts only
            a few values (see its Spark properties page).
        executor_memory: `spark.executor.memory`, a Spark size such as `8g`.
        executor_instances: `spark.executor.instances`, the executors started
            before dynamic allocation scales their number.
    """

    executor_cores: Optional[int] = None
    executor_memory: Optional[str] = None
    executor_instances: Optional[int] = None

    def __post_init__(self):
        for name in ("executor_cores", "executor_instances"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be at least 1, got {value}.")
        if (self.executor_memory is not None
                and not _SPARK_SIZE.match(self.executor_memory)):
            raise ValueError(
                f"executor_memory must be a Spark size such as 4g or 4096m, "
                f"got {self.executor_memory!r}.")

    def to_properties(self) -> Dict[str, str]:
        """Return the settings that are not None as Spark properties."""
        properties = {}
        if self.executor_cores is not None:
            properties["spark.executor.cores"] = str(self.executor_cores)
        if self.executor_memory is not None:
            properties["spark.executor.memory"] = self.executor_memory
        if self.executor_instances is not None:
            properties["spark.executor.instances"] = str(self.executor_instances)
        return properties


@dataclasses.dataclass(frozen=True)
class JobFiles:
    """Cloud Storage locations of the job's code.

    Attributes:
        main_python_file_uri: `gs://` URI of `make_examples.py`.
        python_file_uris: `gs://` URIs of the package zip (and any other
            archives) for `--py-files`.
    """

    main_python_file_uri: str
    python_file_uris: Tuple[str, ...]


def staged_job_files(staging_uri: str, job_id: str) -> JobFiles:
    """Return where `stage_job_files` puts the code of job `job_id`."""
    prefix = paths.parse_gcs_uri(staging_uri).join(job_id)
    return JobFiles(
        main_python_file_uri=str(prefix.join(os.path.basename(MAIN_FILE))),
        python_file_uris=(str(prefix.join(PACKAGE_ZIP_NAME)),),
    )


def stage_job_files(files: JobFiles,
                    client: Optional[cloud_storage.Client] = None) -> None:
    """Upload `make_examples.py` and a fresh package zip to `files`' URIs."""
    client = client or storage.make_client()
    storage.upload_file(MAIN_FILE, files.main_python_file_uri, client=client)
    with tempfile.TemporaryDirectory() as scratch:
        archive = packaging.build_package_zip(
            os.path.join(scratch, PACKAGE_ZIP_NAME))
        storage.upload_file(archive, files.python_file_uris[0], client=client)


def default_job_id(now: Optional[datetime.datetime] = None) -> str:
    """Return a new ID such as `make-examples-20240131-235959-1a2b`.

    The random suffix keeps two submissions in the same second apart.
    """
    now = now or datetime.datetime.now(datetime.timezone.utc)
    return f"make-examples-{now:%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:4]}"


def regional_endpoint(region: str) -> str:
    """Return the Dataproc API endpoint of `region`.

    Batches and jobs belong to one region. The client's default endpoint,
    dataproc.googleapis.com, serves only Dataproc's legacy `global` region,
    so requests for a real region go to that region's endpoint.
    """
    _check_region(region)
    return f"{region}-dataproc.googleapis.com:443"


def client_options(region: str) -> client_options_lib.ClientOptions:
    """Return client options that select the regional endpoint of `region`."""
    return client_options_lib.ClientOptions(api_endpoint=regional_endpoint(region))


def _check_region(region: str) -> None:
    if not _REGION.match(region or ""):
        raise ValueError(
            f"Invalid region {region!r}: expected a Compute Engine region such "
            f"as us-central1 or europe-west4.")


def _check_project(project: str) -> None:
    if not project:
        raise ValueError(
            "Missing project: pass the Google Cloud project id, for example "
            "from `gcloud config get-value project`.")


def build_batch_request(
    *,
    project: str,
    region: str,
    batch_id: str,
    files: JobFiles,
    job_args: Sequence[str],
    runtime_version: str = DEFAULT_RUNTIME_VERSION,
    resources: SparkResources = SparkResources(),
    properties: Optional[Mapping[str, str]] = None,
    service_account: Optional[str] = None,
    staging_bucket: Optional[str] = None,
    subnetwork_uri: Optional[str] = None,
    labels: Optional[Mapping[str, str]] = None,
    request_id: Optional[str] = None,
) -> dataproc_v1.CreateBatchRequest:
    """Build the request that creates a Dataproc Serverless PySpark batch.

    Args:
        project: Project id.
        region: Region of the batch, for example `europe-west4`.
        batch_id: Final part of the batch name: 4 to 63 characters of
            lowercase letters, digits and `-`.
        files: Main file and `--py-files` archives in Cloud Storage.
        job_args: Arguments of `make_examples.py`.
        runtime_version: Dataproc Serverless runtime version.
        resources: Executor settings.
        properties: Further Spark properties; they override `resources`.
        service_account: Service account email the batch runs as; the
            Compute Engine default service account when None.
        staging_bucket: Bucket name (not a `gs://` URI) for Dataproc's own
            staging and Spark history files.
        subnetwork_uri: VPC subnetwork; the `default` network when None.
        labels: Labels of the batch.
        request_id: Idempotency key: Dataproc ignores a second request with
            the same ID. A new UUID when None.

    Returns:
        A `CreateBatchRequest` ready for `BatchControllerClient.create_batch`.
    """
    _check_project(project)
    _check_region(region)
    if not _BATCH_ID.match(batch_id):
        raise ValueError(
            f"Invalid batch id {batch_id!r}: use 4 to 63 characters of "
            f"lowercase letters, digits and '-'.")
    if staging_bucket is not None and staging_bucket.startswith(paths.GCS_SCHEME):
        raise ValueError(
            f"Invalid staging bucket {staging_bucket!r}: pass the bucket name "
            f"without gs://.")

    spark_properties = resources.to_properties()
    spark_properties.update(properties or {})
    # Only given fields are set: subnetwork_uri belongs to a oneof with
    # network_uri, and setting it to "" would still select it.
    execution_fields = {
        "service_account": service_account,
        "staging_bucket": staging_bucket,
        "subnetwork_uri": subnetwork_uri,
    }
    execution_config = dataproc_v1.ExecutionConfig(
        **{key: value for key, value in execution_fields.items() if value})
    batch = dataproc_v1.Batch(
        pyspark_batch=dataproc_v1.PySparkBatch(
            main_python_file_uri=files.main_python_file_uri,
            python_file_uris=list(files.python_file_uris),
            args=list(job_args),
        ),
        runtime_config=dataproc_v1.RuntimeConfig(
            version=runtime_version,
            properties=spark_properties,
        ),
        environment_config=dataproc_v1.EnvironmentConfig(
            execution_config=execution_config),
        labels=dict(labels or {}),
    )
    return dataproc_v1.CreateBatchRequest(
        parent=f"projects/{project}/locations/{region}",
        batch=batch,
        batch_id=batch_id,
        request_id=request_id or uuid.uuid4().hex,
    )


def build_cluster_job_request(
    *,
    project: str,
    region: str,
    cluster: str,
    job_id: str,
    files: JobFiles,
    job_args: Sequence[str],
    resources: SparkResources = SparkResources(),
    properties: Optional[Mapping[str, str]] = None,
    labels: Optional[Mapping[str, str]] = None,
    request_id: Optional[str] = None,
) -> dataproc_v1.SubmitJobRequest:
    """Build the request that runs the PySpark job on an existing cluster.

    Args:
        project: Project id.
        region: Region of the cluster.
        cluster: Cluster name.
        job_id: Job id, unique in the project: at most 100 letters, digits,
            `_` and `-`.
        files: Main file and `--py-files` archives in Cloud Storage.
        job_args: Arguments of `make_examples.py`.
        resources: Executor settings.
        properties: Further Spark properties; they override `resources`.
        labels: Labels of the job.
        request_id: Idempotency key, as in `build_batch_request`.

    Returns:
        A `SubmitJobRequest` for `JobControllerClient.submit_job_as_operation`.
    """
    _check_project(project)
    _check_region(region)
    if not cluster:
        raise ValueError("Missing cluster name: pass --cluster.")
    if not _JOB_ID.match(job_id):
        raise ValueError(
            f"Invalid job id {job_id!r}: use at most 100 letters, digits, '_' "
            f"and '-'.")

    spark_properties = resources.to_properties()
    spark_properties.update(properties or {})
    job = dataproc_v1.Job(
        reference=dataproc_v1.JobReference(project_id=project, job_id=job_id),
        placement=dataproc_v1.JobPlacement(cluster_name=cluster),
        pyspark_job=dataproc_v1.PySparkJob(
            main_python_file_uri=files.main_python_file_uri,
            python_file_uris=list(files.python_file_uris),
            args=list(job_args),
            properties=spark_properties,
        ),
        labels=dict(labels or {}),
    )
    return dataproc_v1.SubmitJobRequest(
        project_id=project,
        region=region,
        job=job,
        request_id=request_id or uuid.uuid4().hex,
    )


def request_to_json(request) -> str:
    """Return a Dataproc request as indented JSON with the REST API's field names."""
    return json_format.MessageToJson(type(request).pb(request), indent=2)


def submit_batch(request: dataproc_v1.CreateBatchRequest, region: str,
                 wait: bool = True,
                 timeout_s: float = DEFAULT_TIMEOUT_S) -> Optional[dataproc_v1.Batch]:
    """Create the batch and, when `wait` is True, wait until it finishes.

    Returns:
        The finished batch, or None when `wait` is False.

    Raises:
        google.api_core.exceptions.GoogleAPICallError: The request or the
            batch failed.
        concurrent.futures.TimeoutError: The batch ran past `timeout_s`.
    """
    credentials, _ = storage.default_credentials()
    client = dataproc_v1.BatchControllerClient(
        credentials=credentials, client_options=client_options(region))
    operation = client.create_batch(request=request)
    logging.info("Submitted Dataproc batch %s; operation %s",
                 request.batch_id, operation.operation.name)
    print(f"Operation: {operation.operation.name}")
    if not wait:
        return None
    batch = operation.result(timeout=timeout_s)
    print(f"Batch {batch.name} finished in state {batch.state.name}.")
    return batch


def submit_cluster_job(request: dataproc_v1.SubmitJobRequest, region: str,
                       wait: bool = True,
                       timeout_s: float = DEFAULT_TIMEOUT_S) -> Optional[dataproc_v1.Job]:
    """Submit the job to its cluster and, when `wait` is True, wait for it.

    Returns:
        The finished job, or None when `wait` is False.

    Raises:
        google.api_core.exceptions.GoogleAPICallError: The request or the job
            failed.
        concurrent.futures.TimeoutError: The job ran past `timeout_s`.
    """
    credentials, _ = storage.default_credentials()
    client = dataproc_v1.JobControllerClient(
        credentials=credentials, client_options=client_options(region))
    operation = client.submit_job_as_operation(request=request)
    logging.info("Submitted Dataproc job %s; operation %s",
                 request.job.reference.job_id, operation.operation.name)
    print(f"Operation: {operation.operation.name}")
    if not wait:
        return None
    job = operation.result(timeout=timeout_s)
    print(f"Job {job.reference.job_id} finished in state {job.status.state.name}; "
          f"driver output: {job.driver_output_resource_uri}")
    return job


# ---------------------------------------------------------------- command line


def _key_value(text: str) -> Tuple[str, str]:
    key, separator, value = text.partition("=")
    if not separator or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key, value


def build_arg_parser() -> argparse.ArgumentParser:
    """Build the parser of `python -m cloud.dataproc`."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--project", required=True, help="Google Cloud project id.")
    common.add_argument("--region", required=True,
                        help="Dataproc region, for example europe-west4.")
    common.add_argument(
        "--staging-uri", required=True,
        help="gs:// prefix that receives make_examples.py and the package zip, "
        "in a folder named after the job id.")
    common.add_argument(
        "--job-id",
        help="Batch or job id. Default: make-examples-<UTC time>-<random>.")
    common.add_argument("--executor-cores", type=int,
                        help="spark.executor.cores. Default: Dataproc's.")
    common.add_argument("--executor-memory",
                        help="spark.executor.memory, e.g. 8g. Default: Dataproc's.")
    common.add_argument("--executor-instances", type=int,
                        help="spark.executor.instances. Default: Dataproc's.")
    common.add_argument(
        "--property", dest="properties", action="append", type=_key_value,
        default=[], metavar="KEY=VALUE",
        help="Further Spark property; repeat for several.")
    common.add_argument("--label", dest="labels", action="append",
                        type=_key_value, default=[], metavar="KEY=VALUE",
                        help="Label of the batch or job; repeat for several.")
    common.add_argument(
        "--timeout-s", type=float, default=DEFAULT_TIMEOUT_S,
        help="Seconds to wait for the run to finish. Default: %(default)s.")
    common.add_argument("--no-wait", action="store_true",
                        help="Return after submitting, without waiting.")
    common.add_argument(
        "--dry-run", action="store_true",
        help="Print the request as JSON; upload nothing and call no API.")

    parser = argparse.ArgumentParser(
        prog="python -m cloud.dataproc",
        description="Run spark/make_examples.py on Dataproc. Put the job's own "
        "flags after --, for example: -- --input gs://b/ratings.csv --output "
        "gs://b/examples/run1.")
    modes = parser.add_subparsers(dest="mode", required=True)
    batch = modes.add_parser("batch", parents=[common],
                             help="Dataproc Serverless batch.")
    batch.add_argument(
        "--runtime-version", default=DEFAULT_RUNTIME_VERSION,
        help="Dataproc Serverless runtime version. Default: %(default)s.")
    batch.add_argument(
        "--service-account",
        help="Service account email the batch runs as. Default: the Compute "
        "Engine default service account.")
    batch.add_argument("--subnetwork-uri",
                       help="VPC subnetwork. Default: the default network.")
    cluster = modes.add_parser("cluster", parents=[common],
                               help="Job on an existing Dataproc cluster.")
    cluster.add_argument("--cluster", required=True, help="Cluster name.")
    return parser


def split_job_args(argv: Sequence[str]) -> Tuple[List[str], List[str]]:
    """Split the command line at the first `--` into own and job arguments."""
    argv = list(argv)
    if "--" not in argv:
        return argv, []
    index = argv.index("--")
    return argv[:index], argv[index + 1:]


def check_job_args(job_args: Sequence[str]) -> None:
    """Parse `job_args` with the job's own parser and check its paths.

    Raises:
        SystemExit: The job's parser rejected the arguments.
        ValueError: `--input` or `--output` is not a `gs://` URI; Dataproc
            cannot read the submitting machine's disk.
    """
    # Imported here so that building requests does not need the job's code.
    from spark import config as job_config  # pylint: disable=g-import-not-at-top

    config = job_config.config_from_args(list(job_args))
    for flag, value in (("--input", config.input_path),
                        ("--output", config.output_path)):
        if not paths.is_gcs_path(value):
            raise ValueError(
                f"Job argument {flag} {value!r} must be a gs:// URI: Dataproc "
                f"cannot read local paths of the submitting machine.")


def build_request_from_args(args: argparse.Namespace, job_args: Sequence[str]):
    """Build the batch or cluster request that the parsed command line describes."""
    job_id = args.job_id or default_job_id()
    files = staged_job_files(args.staging_uri, job_id)
    resources = SparkResources(
        executor_cores=args.executor_cores,
        executor_memory=args.executor_memory,
        executor_instances=args.executor_instances,
    )
    common = dict(
        project=args.project,
        region=args.region,
        files=files,
        job_args=job_args,
        resources=resources,
        properties=dict(args.properties),
        labels=dict(args.labels),
    )
    if args.mode == "batch":
        return build_batch_request(
            batch_id=job_id,
            runtime_version=args.runtime_version,
            service_account=args.service_account,
            staging_bucket=paths.parse_gcs_uri(args.staging_uri).bucket,
            subnetwork_uri=args.subnetwork_uri,
            **common)
    return build_cluster_job_request(cluster=args.cluster, job_id=job_id, **common)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the command line; return the exit status."""
    own_args, job_args = split_job_args(sys.argv[1:] if argv is None else argv)
    parser = build_arg_parser()
    args = parser.parse_args(own_args)
    if not job_args:
        parser.error("missing job arguments: put make_examples.py flags after --.")
    try:
        check_job_args(job_args)
        request = build_request_from_args(args, job_args)
    except ValueError as error:
        parser.error(str(error))

    if args.dry_run:
        print(request_to_json(request))
        return 0

    if args.mode == "batch":
        files = JobFiles(request.batch.pyspark_batch.main_python_file_uri,
                         tuple(request.batch.pyspark_batch.python_file_uris))
    else:
        files = JobFiles(request.job.pyspark_job.main_python_file_uri,
                         tuple(request.job.pyspark_job.python_file_uris))
    try:
        stage_job_files(files)
        if args.mode == "batch":
            submit_batch(request, args.region, wait=not args.no_wait,
                         timeout_s=args.timeout_s)
        else:
            submit_cluster_job(request, args.region, wait=not args.no_wait,
                               timeout_s=args.timeout_s)
    except (storage.CredentialsNotFoundError, FileNotFoundError,
            PermissionError, TimeoutError, concurrent.futures.TimeoutError,
            api_exceptions.GoogleAPICallError) as error:
        print(f"cloud.dataproc: error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
