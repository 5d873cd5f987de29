"""File-system operations of the job, for local paths and Cloud Storage.

The output is a local directory (a path or a `file://` URI) or a Cloud
Storage prefix (`gs://bucket/prefix`). Both end with an empty `_SUCCESS`
object, written last, and readers must treat an output without `_SUCCESS`
as incomplete. `is_complete` checks it. `pipeline/examples_stage.py` reuses
an output only when `_SUCCESS` exists. The pipeline's ImportExampleGen split
patterns match `part-*` and do not look at `_SUCCESS`, so run the pipeline
only on a finished output.

Local commit protocol: the job writes into a hidden sibling directory and
renames it into place at the end, so readers never see a partial output.

Cloud Storage has no atomic rename of a prefix, so there the protocol is:

1. The driver rejects an output prefix that contains any object, unless
   overwrite is set. `<output>/_SUCCESS` marks a finished output. Any other
   object is a run that failed or is still running, or unrelated data. With
   overwrite, the driver deletes every object below `<output>/` before the
   job starts, so the old output is gone even if the new run fails.
2. Executors write each shard to a local temporary file and upload it to its
   final name when it is complete. An upload creates the object in one step,
   so no reader sees a partial shard. A retried task uploads the same bytes
   again, because every draw of the job is seeded.
3. The driver writes `summary.json`, then `_SUCCESS`. Rejected input rows
   (`rejects/part-00000.json`) are written by one Spark task the same way
   as the shards.
4. When the run fails, the driver deletes what it wrote below `<output>/`,
   except after too many rejected rows, when the rejected rows stay there for
   inspection and the next run needs overwrite.

Executors open objects with the storage options that the driver resolved
(`storage_options`), not with their own environment. Spark's Python workers
inherit the driver's environment only from when its session started, so a
`STORAGE_EMULATOR_HOST` set later would not reach them.
"""

import os
import shutil
import tempfile
import uuid
from typing import Any, Dict, Optional, Set

import fsspec

from cloud import paths

SUCCESS_MARKER = "_SUCCESS"

StorageOptions = Dict[str, Any]


class OutputExistsError(FileExistsError):
    """Raised when the output exists and overwriting is off."""


def resolve_output_path(path: str) -> str:
    """Return `path` as a local path or a validated `gs://` URI.

    Raises:
      NotImplementedError: `path` has a URL scheme other than `file://` and
        `gs://`.
      ValueError: A `gs://` URI is invalid or names a whole bucket. Deleting
        an old output with overwrite would then empty the bucket.
    """
    if path.startswith("file://"):
        return path[len("file://"):]
    if paths.is_gcs_path(path):
        uri = paths.parse_gcs_uri(path)
        if not uri.name.strip("/"):
            raise ValueError(
                f"Output {path!r} names a whole bucket. Pass a prefix inside "
                f"it, e.g. gs://{uri.bucket}/examples/run1.")
        # Without the trailing `/`, the form that `join` appends names to.
        return f"{paths.GCS_SCHEME}{uri.bucket}/{uri.name.rstrip('/')}"
    if "://" in path:
        raise NotImplementedError(
            f"Output {path!r}: only local paths and gs:// URIs are supported.")
    return path


def is_gcs(path: str) -> bool:
    return paths.is_gcs_path(path)


def join(root: str, *parts: str) -> str:
    """Join names below a local directory or a `gs://` prefix."""
    return paths.join_path(root, *parts)


def storage_options(path: str) -> StorageOptions:
    """Return the fsspec options that executors use to open objects of `path`.

    They contain the credentials choice of `cloud.paths` and, when
    `STORAGE_EMULATOR_HOST` is set on the driver, the emulator's endpoint.
    Empty for local paths.
    """
    options = paths.fsspec_storage_options(path)
    emulator = os.environ.get(paths.EMULATOR_HOST_ENV)
    if options and emulator:
        options["endpoint_url"] = emulator
    return options


def gcs_filesystem(options: Optional[StorageOptions] = None):
    """Return a gcsfs file system that lists objects afresh on every call.

    gcsfs caches listings by default, so a prefix listed as empty before the
    executors wrote to it would still look empty to the driver.
    """
    if options is None:
        options = storage_options(paths.GCS_SCHEME)
    return fsspec.filesystem("gs", use_listings_cache=False, **options)


def _list_gcs_objects(uri: str):
    """Return the object paths (`bucket/name`) below the prefix `uri`.

    Folder placeholders (names that end in `/`, which the Cloud console
    creates) are left out, because they hold no data.

    Raises:
      FileNotFoundError: The bucket does not exist.
    """
    prefix = paths.parse_gcs_uri(uri).as_prefix()
    try:
        # Listing needs only storage.objects.list, which roles that cannot
        # read bucket metadata (storage.objectAdmin) have. gcsfs raises
        # FileNotFoundError for a missing bucket and returns an empty list for
        # an empty prefix.
        found = gcs_filesystem().find(f"{prefix.bucket}/{prefix.name}")
    except FileNotFoundError as error:
        raise FileNotFoundError(
            f"Bucket gs://{prefix.bucket} of {uri} not found. Create it with "
            f"`gcloud storage buckets create gs://{prefix.bucket} "
            f"--location=REGION`, or check the bucket name.") from error
    return [name for name in found if not name.endswith("/")]


def check_output_free(path: str, overwrite: bool) -> None:
    """Raise `OutputExistsError` if the output exists and `overwrite` is False.

    A `gs://` output exists when any object lies below `<path>/`.

    Raises:
      OutputExistsError: The output exists and `overwrite` is False.
      FileNotFoundError: The bucket of a `gs://` output does not exist.
    """
    if not is_gcs(path):
        if os.path.exists(path) and not overwrite:
            raise OutputExistsError(
                f"Output directory {path!r} already exists. Pass --overwrite "
                f"to replace it, or choose another --output.")
        return
    objects = _list_gcs_objects(path)
    if not objects or overwrite:
        return
    marker = paths.parse_gcs_uri(join(path, SUCCESS_MARKER))
    if f"{marker.bucket}/{marker.name}" in objects:
        state = "a finished output (it has _SUCCESS)"
    else:
        state = ("objects but no _SUCCESS: an unfinished or failed run, or "
                 "other data")
    raise OutputExistsError(
        f"Output {path} already contains {state}, {len(objects)} objects in "
        f"all. Pass --overwrite to delete them first, or choose another "
        f"--output.")


def start_output(path: str, overwrite: bool) -> str:
    """Prepare the output and return the root that the job writes into.

    Local: a new hidden sibling directory of `path`. `gs://`: `path` itself,
    after deleting every object below it when `overwrite` is True.

    Raises:
      OutputExistsError: The output exists and `overwrite` is False.
    """
    if not is_gcs(path):
        return make_staging_dir(path)
    check_output_free(path, overwrite)
    remove_dir(path)
    return path


def commit_output(root: str, path: str, overwrite: bool) -> None:
    """Publish what the job wrote below `root` as the output `path`.

    Local: renames the staging directory `root` to `path`. `gs://`: `root`
    is `path`, and only the `_SUCCESS` marker is left to write.
    """
    if is_gcs(path):
        write_text(join(path, SUCCESS_MARKER), "")
        return
    commit_staging_dir(root, path, overwrite)


def make_staging_dir(path: str) -> str:
    """Create an empty hidden sibling directory of `path` to write into.

    A sibling on the same file system lets `commit_staging_dir` move the
    finished output into place with one rename.
    """
    parent, name = os.path.split(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    staging = os.path.join(parent, f".{name}.staging-{uuid.uuid4().hex[:12]}")
    os.makedirs(staging)
    return staging


def commit_staging_dir(staging: str, path: str, overwrite: bool) -> None:
    """Move `staging` to `path`, then write the `_SUCCESS` marker.

    An existing `path` is moved aside first and deleted only after the new
    output is in place, so a failure never leaves a half-written `path`.

    Raises:
      OutputExistsError: `path` exists and `overwrite` is False.
    """
    check_output_free(path, overwrite)
    previous = None
    if os.path.exists(path):
        previous = f"{staging}.previous"
        os.rename(path, previous)
    os.rename(staging, path)
    if previous is not None:
        shutil.rmtree(previous)
    write_text(os.path.join(path, SUCCESS_MARKER), "")


def remove_dir(path: str) -> None:
    """Delete a directory tree, or every object below a `gs://` prefix.

    Does nothing when there is nothing to delete.
    """
    if not is_gcs(path):
        shutil.rmtree(path, ignore_errors=True)
        return
    objects = _list_gcs_objects(path)
    if objects:
        gcs_filesystem().rm(objects)


def is_complete(path: str) -> bool:
    """Return whether the output `path` has its `_SUCCESS` marker."""
    return exists(join(path, SUCCESS_MARKER))


def write_text(path: str, text: str) -> None:
    """Write `text` to `path` so that readers see all of it or nothing.

    Local files are written to a temporary file and renamed. A `gs://`
    object is created by one upload.
    """
    if is_gcs(path):
        gcs_filesystem().pipe_file(path, text.encode("utf-8"))
        return
    temporary = f"{path}.tmp-{uuid.uuid4().hex[:8]}"
    with open(temporary, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.replace(temporary, path)


def open_for_write(path: str):
    """Open a local binary file that becomes `path` on `finish_write`.

    For a local `path` the temporary file is a hidden sibling. For a `gs://`
    `path` it is a file in the first of Spark's local directories
    (`SPARK_LOCAL_DIRS`, which Spark sets for its Python workers and also
    uses for shuffle files), or in the system's temporary directory outside
    Spark.

    Returns:
      A pair of the open file object and its temporary path. A retried Spark
      task writes its own temporary file, so two attempts never mix.
    """
    if is_gcs(path):
        local_dirs = os.environ.get("SPARK_LOCAL_DIRS", "")
        directory = local_dirs.split(",")[0] or None
        descriptor, temporary = tempfile.mkstemp(
            prefix=".upload-", suffix=f"-{os.path.basename(path)}",
            dir=directory)
        return os.fdopen(descriptor, "wb"), temporary
    os.makedirs(os.path.dirname(path), exist_ok=True)
    temporary = os.path.join(
        os.path.dirname(path),
        f".{os.path.basename(path)}.tmp-{uuid.uuid4().hex[:8]}")
    return open(temporary, "wb"), temporary


def finish_write(temporary: str, path: str,
                 options: Optional[StorageOptions] = None) -> None:
    """Move a closed file from `open_for_write` to its final `path`.

    A `gs://` `path` is uploaded with `options` (from `storage_options` on
    the driver), and the temporary file is deleted whether or not the upload
    succeeds.
    """
    if not is_gcs(path):
        os.replace(temporary, path)
        return
    try:
        gcs_filesystem(options or storage_options(path)).put_file(
            temporary, path)
    finally:
        os.remove(temporary)


def list_file_names(directory: str) -> Set[str]:
    """Return the base names of the files directly in a directory or prefix.

    Empty when the directory or prefix does not exist.
    """
    if not is_gcs(directory):
        if not os.path.isdir(directory):
            return set()
        return set(os.listdir(directory))
    prefix = paths.parse_gcs_uri(directory).as_prefix()
    # gcsfs returns object paths as `bucket/name`.
    start = len(prefix.bucket) + 1 + len(prefix.name)
    relative = [name[start:] for name in _list_gcs_objects(directory)]
    return {name for name in relative if "/" not in name}


def exists(path: str) -> bool:
    if is_gcs(path):
        return gcs_filesystem().exists(path)
    return os.path.exists(path)
