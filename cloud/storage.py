"""Cloud Storage transfers of ratings files, run artefacts and pushed models.

Every call retries transient failures (HTTP 408, 429, 500, 502, 503, 504 and
connection errors) with exponential backoff until a deadline, including
uploads, which google-cloud-storage retries by default only when a generation
precondition is set. Re-sending an upload here is safe because every upload
writes the same bytes to the same name, so a repeated write leaves the same
object. For object bodies (uploads and downloads) google-cloud-storage 2.19
passes only the backoff and the deadline on to google-resumable-media, which
applies its own list of retryable errors (the same status codes and connection
errors) and does not log the retries.

Errors are raised as the built-in exceptions of local file operations, with a
message that names the URI and the next step. A missing bucket or object
raises `BucketNotFoundError` or `ObjectNotFoundError` (both
`FileNotFoundError`), HTTP 403 raises `PermissionError`, and a passed retry
deadline raises `TimeoutError`. Missing credentials raise
`CredentialsNotFoundError`.
"""

import contextlib
import os
from typing import Iterator, List, Optional, Tuple

from absl import logging
from google.api_core import exceptions as api_exceptions
from google.api_core import retry as api_retry
import google.auth
from google.auth import credentials as auth_credentials
from google.auth import exceptions as auth_exceptions
from google.cloud import storage
import requests

from cloud import paths

# Seconds from the first attempt after which a call stops retrying.
DEFAULT_DEADLINE_S = 120.0
# Backoff between attempts in seconds: 1, 2, 4, ... capped at 32.
_INITIAL_DELAY_S = 1.0
_MAX_DELAY_S = 32.0
_DELAY_MULTIPLIER = 2.0

# Project id sent to an emulator, which ignores it. google-cloud-storage needs
# some value to build bucket-creation requests.
EMULATOR_PROJECT = "emulator-project"
_SCOPES = ("https://www.googleapis.com/auth/cloud-platform",)

_TRANSIENT_ERRORS = (
    api_exceptions.TooManyRequests,  # 429
    api_exceptions.InternalServerError,  # 500
    api_exceptions.BadGateway,  # 502
    api_exceptions.ServiceUnavailable,  # 503
    api_exceptions.GatewayTimeout,  # 504
    ConnectionError,
    requests.ConnectionError,
    requests.exceptions.ChunkedEncodingError,
    requests.exceptions.Timeout,
)


class BucketNotFoundError(FileNotFoundError):
    """Raised when the bucket of a `gs://` URI does not exist."""


class ObjectNotFoundError(FileNotFoundError):
    """Raised when an object, a prefix or a model version does not exist."""


class CredentialsNotFoundError(RuntimeError):
    """Raised when no Application Default Credentials can be found."""


def is_transient_error(error: BaseException) -> bool:
    """Return True for errors that a later attempt may not hit again."""
    if isinstance(error, _TRANSIENT_ERRORS):
        return True
    if isinstance(error, api_exceptions.GoogleAPICallError):
        return error.code == 408  # Request Timeout has no class of its own.
    if isinstance(error, auth_exceptions.TransportError):
        # Token refresh failures wrap the network error that caused them.
        return bool(error.args) and isinstance(error.args[0], BaseException) \
            and is_transient_error(error.args[0])
    return False


def _log_retry(error: BaseException) -> None:
    logging.warning("Transient Cloud Storage error, retrying: %s", error)


def make_retry(deadline_s: float = DEFAULT_DEADLINE_S) -> api_retry.Retry:
    """Build the retry policy used by every call in this module.

    Args:
        deadline_s: Seconds from the first attempt after which no new attempt
            starts; the last error then surfaces as `TimeoutError`.
    """
    return api_retry.Retry(
        predicate=is_transient_error,
        initial=_INITIAL_DELAY_S,
        maximum=_MAX_DELAY_S,
        multiplier=_DELAY_MULTIPLIER,
        timeout=deadline_s,
        on_error=_log_retry,
    )


def make_client(project: Optional[str] = None) -> storage.Client:
    """Create a Cloud Storage client from Application Default Credentials.

    When `STORAGE_EMULATOR_HOST` is set, the client talks to that emulator with
    anonymous credentials and a placeholder project, and never looks for real
    credentials.

    Args:
        project: Project that owns new buckets. Defaults to the project of the
            credentials, then to `GOOGLE_CLOUD_PROJECT`.

    Raises:
        CredentialsNotFoundError: No credentials are set up.
    """
    if os.environ.get(paths.EMULATOR_HOST_ENV):
        return storage.Client(
            project=project or EMULATOR_PROJECT,
            credentials=auth_credentials.AnonymousCredentials())
    credentials, default_project = default_credentials()
    project = project or default_project or os.environ.get("GOOGLE_CLOUD_PROJECT")
    return storage.Client(project=project, credentials=credentials)


def default_credentials() -> Tuple[auth_credentials.Credentials, Optional[str]]:
    """Load Application Default Credentials with the cloud-platform scope.

    Returns:
        The credentials and their project id, which may be None.

    Raises:
        CredentialsNotFoundError: No credentials are set up.
    """
    try:
        return google.auth.default(scopes=_SCOPES)
    except auth_exceptions.DefaultCredentialsError as error:
        raise CredentialsNotFoundError(
            "No Google Cloud credentials found. Run `gcloud auth "
            "application-default login`, or set GOOGLE_APPLICATION_CREDENTIALS "
            "to the path of a service account key file. To use a local "
            f"Cloud Storage emulator instead, set {paths.EMULATOR_HOST_ENV}. "
            f"Cause: {error}") from error


@contextlib.contextmanager
def _translate_errors(client: storage.Client, uri: str, action: str,
                      retry: api_retry.Retry) -> Iterator[None]:
    """Re-raise Cloud Storage errors of `action` on `uri` with an actionable message."""
    try:
        yield
    except api_exceptions.NotFound as error:
        bucket = paths.parse_gcs_uri(uri).bucket
        if not _bucket_exists(client, bucket, retry):
            raise BucketNotFoundError(
                f"Failed to {action} {uri}: bucket gs://{bucket} not found. "
                f"Create it with `gcloud storage buckets create gs://{bucket} "
                f"--location=REGION`, or check the bucket name and the "
                f"project.") from error
        raise ObjectNotFoundError(
            f"Failed to {action} {uri}: object not found. List what exists "
            f"with `gcloud storage ls {uri}`.") from error
    except api_exceptions.Forbidden as error:
        raise PermissionError(
            f"Failed to {action} {uri}: permission denied ({error.message}). "
            f"Grant the caller roles/storage.objectAdmin (or objectViewer for "
            f"reads) on gs://{paths.parse_gcs_uri(uri).bucket}.") from error
    except api_exceptions.RetryError as error:
        raise TimeoutError(
            f"Failed to {action} {uri}: transient errors went on for more "
            f"than {retry.timeout} s. Last error: {error.cause}") from error
    except (api_exceptions.GoogleAPICallError, ConnectionError,
            requests.RequestException) as error:
        # Object uploads and downloads retry inside google-resumable-media,
        # which re-raises the last error itself in place of a RetryError.
        if not is_transient_error(error):
            raise
        raise TimeoutError(
            f"Failed to {action} {uri}: transient errors went on for more "
            f"than {retry.timeout} s. Last error: {error}") from error


def _bucket_exists(client: storage.Client, bucket: str,
                   retry: api_retry.Retry) -> bool:
    try:
        return client.bucket(bucket).exists(retry=retry)
    except api_exceptions.Forbidden:
        # Object-level roles such as storage.objectViewer may not read bucket
        # metadata. The bucket is then assumed to exist, so the error names
        # the object.
        return True


def upload_file(local_path: paths.PathLike, destination_uri: str,
                client: Optional[storage.Client] = None,
                retry: Optional[api_retry.Retry] = None) -> str:
    """Upload one local file, for example a ratings CSV.

    Args:
        local_path: File to upload.
        destination_uri: Object URI, or a prefix ending in `/` to keep the
            file's base name.
        client: Client to use; `make_client()` by default.
        retry: Retry policy; `make_retry()` by default.

    Returns:
        The `gs://` URI of the written object.

    Raises:
        FileNotFoundError: `local_path` is not a file.
        BucketNotFoundError: The destination bucket does not exist.
    """
    local_path = os.fspath(local_path)
    if not os.path.isfile(local_path):
        raise FileNotFoundError(
            f"Failed to upload {local_path!r}: not a file.")
    destination = paths.parse_gcs_uri(destination_uri)
    if not destination.name or destination.name.endswith("/"):
        destination = destination.join(os.path.basename(local_path))
    client = client or make_client()
    retry = retry or make_retry()

    uri = str(destination)
    with _translate_errors(client, uri, "upload to", retry):
        blob = client.bucket(destination.bucket).blob(destination.name)
        blob.upload_from_filename(local_path, retry=retry)
    logging.info("Uploaded %s to %s", local_path, uri)
    return uri


def download_file(source_uri: str, local_path: paths.PathLike,
                  client: Optional[storage.Client] = None,
                  retry: Optional[api_retry.Retry] = None) -> str:
    """Download one object to `local_path`, creating parent directories.

    Returns:
        `local_path` as a string.

    Raises:
        BucketNotFoundError: The bucket does not exist.
        ObjectNotFoundError: The object does not exist.
    """
    source = paths.parse_gcs_uri(source_uri)
    if not source.name or source.name.endswith("/"):
        raise ValueError(
            f"Failed to download {source_uri}: it names a prefix, not an "
            f"object; use download_tree for prefixes.")
    client = client or make_client()
    retry = retry or make_retry()
    local_path = os.fspath(local_path)
    os.makedirs(os.path.dirname(os.path.abspath(local_path)), exist_ok=True)

    with _translate_errors(client, source_uri, "download", retry):
        blob = client.bucket(source.bucket).blob(source.name)
        blob.download_to_filename(local_path, retry=retry)
    return local_path


def upload_tree(local_dir: paths.PathLike, destination_uri: str,
                client: Optional[storage.Client] = None,
                retry: Optional[api_retry.Retry] = None) -> List[str]:
    """Copy every file below `local_dir` to the `destination_uri` prefix.

    Relative paths are kept, with `/` as the separator, so
    `run/model/saved_model.pb` lands at `<destination_uri>/model/saved_model.pb`.
    Symbolic links to directories are not followed, and empty directories are
    not represented, because Cloud Storage has no directories.

    Returns:
        The URIs written, sorted.

    Raises:
        NotADirectoryError: `local_dir` is not a directory.
        BucketNotFoundError: The destination bucket does not exist.
    """
    local_dir = os.fspath(local_dir)
    if not os.path.isdir(local_dir):
        raise NotADirectoryError(
            f"Failed to upload {local_dir!r}: not a directory.")
    prefix = paths.parse_gcs_uri(destination_uri)
    client = client or make_client()
    retry = retry or make_retry()

    written = []
    for relative_path in sorted(_walk_files(local_dir)):
        parts = relative_path.split(os.sep)
        uri = str(prefix.join(*parts))
        upload_file(os.path.join(local_dir, relative_path), uri,
                    client=client, retry=retry)
        written.append(uri)
    logging.info("Uploaded %d files from %s to %s", len(written), local_dir,
                 destination_uri)
    return written


def _walk_files(root: str) -> Iterator[str]:
    for directory, _, file_names in os.walk(root):
        for file_name in file_names:
            yield os.path.relpath(os.path.join(directory, file_name), root)


def download_tree(source_uri: str, local_dir: paths.PathLike,
                  client: Optional[storage.Client] = None,
                  retry: Optional[api_retry.Retry] = None) -> List[str]:
    """Copy every object below the `source_uri` prefix into `local_dir`.

    Objects whose names end in `/` are folder placeholders (the Cloud console
    and some tools create them) and are skipped.

    Returns:
        The local paths written, sorted.

    Raises:
        ObjectNotFoundError: No object exists below `source_uri`.
        BucketNotFoundError: The bucket does not exist.
        ValueError: An object name has a `.` or `..` path component, which
            would write outside `local_dir`.
    """
    prefix = paths.parse_gcs_uri(source_uri).as_prefix()
    client = client or make_client()
    retry = retry or make_retry()
    local_dir = os.fspath(local_dir)

    with _translate_errors(client, source_uri, "list", retry):
        names = [blob.name for blob in client.list_blobs(
            prefix.bucket, prefix=prefix.name, retry=retry)]
    names = sorted(name for name in names if not name.endswith("/"))
    if not names:
        raise ObjectNotFoundError(
            f"Failed to download {source_uri}: no objects found below "
            f"{prefix}. Check the path with `gcloud storage ls {prefix}`.")

    written = []
    for name in names:
        relative_parts = name[len(prefix.name):].split("/")
        if any(part in ("", ".", "..") for part in relative_parts):
            raise ValueError(
                f"Failed to download gs://{prefix.bucket}/{name}: its name "
                f"has an empty, '.' or '..' path component below {prefix}, "
                f"which would write outside {local_dir!r}.")
        local_path = os.path.join(local_dir, *relative_parts)
        download_file(f"gs://{prefix.bucket}/{name}", local_path,
                      client=client, retry=retry)
        written.append(local_path)
    logging.info("Downloaded %d files from %s to %s", len(written), source_uri,
                 local_dir)
    return written


def list_model_versions(serving_root: str,
                        client: Optional[storage.Client] = None,
                        retry: Optional[api_retry.Retry] = None) -> List[int]:
    """List the model versions that TFX's Pusher wrote below `serving_root`.

    The Pusher writes each blessed model to `<serving_root>/<version>/`, where
    the version is an integer (seconds since the epoch when it was pushed).
    Prefixes whose name is not a non-negative integer are ignored.

    Returns:
        Versions in ascending order; empty when nothing was pushed yet.

    Raises:
        BucketNotFoundError: The bucket does not exist.
    """
    root = paths.parse_gcs_uri(serving_root).as_prefix()
    client = client or make_client()
    retry = retry or make_retry()

    with _translate_errors(client, serving_root, "list", retry):
        listing = client.list_blobs(root.bucket, prefix=root.name,
                                    delimiter="/", retry=retry)
        # `prefixes` fills in only while the pages are consumed.
        for _ in listing:
            pass
        prefixes = listing.prefixes
    versions = []
    for prefix in prefixes:
        name = prefix[len(root.name):].rstrip("/")
        if name.isdigit():
            versions.append(int(name))
    return sorted(versions)


def download_model_version(serving_root: str, local_dir: paths.PathLike,
                           version: Optional[int] = None,
                           client: Optional[storage.Client] = None,
                           retry: Optional[api_retry.Retry] = None) -> str:
    """Download one pushed SavedModel version to `<local_dir>/<version>`.

    Args:
        serving_root: Pusher destination, `gs://.../serving`.
        local_dir: Local directory that receives the version directory.
        version: Version to fetch; the latest (largest) one by default.

    Returns:
        The local directory of the downloaded version.

    Raises:
        ObjectNotFoundError: No version exists below `serving_root`, or not
            the requested one.
    """
    client = client or make_client()
    retry = retry or make_retry()
    versions = list_model_versions(serving_root, client=client, retry=retry)
    if not versions:
        raise ObjectNotFoundError(
            f"No model versions found below {serving_root}. The Pusher writes "
            f"a version only when the Evaluator blessed the model; check the "
            f"Evaluator's output and the serving directory of the pipeline.")
    if version is None:
        version = versions[-1]
    elif version not in versions:
        raise ObjectNotFoundError(
            f"Model version {version} not found below {serving_root}. "
            f"Available versions: {', '.join(map(str, versions))}.")

    source = paths.join_path(serving_root, str(version))
    destination = os.path.join(os.fspath(local_dir), str(version))
    download_tree(source, destination, client=client, retry=retry)
    return destination
