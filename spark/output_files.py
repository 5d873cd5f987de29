"""File-system operations of the job, kept in one module.

Only local paths are supported. Cloud storage (`gs://`) needs its own
implementation of these functions.
"""

import os
import shutil
import uuid

SUCCESS_MARKER = "_SUCCESS"


class OutputExistsError(FileExistsError):
    """Raised when the output directory exists and overwriting is off."""


def check_local(path: str) -> str:
    """Return `path` as a local path; raise for any URL scheme but `file://`."""
    if path.startswith("file://"):
        return path[len("file://"):]
    if "://" in path:
        raise NotImplementedError(
            f"Output {path!r}: only local paths are supported so far. Write to "
            f"a local directory and copy it, e.g. with `gsutil -m cp -r`.")
    return path


def check_output_free(path: str, overwrite: bool) -> None:
    """Raise `OutputExistsError` if `path` exists and `overwrite` is False."""
    if os.path.exists(path) and not overwrite:
        raise OutputExistsError(
            f"Output directory {path!r} already exists. Pass --overwrite to "
            f"replace it, or choose another --output.")


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
    """Delete a directory tree if it exists."""
    shutil.rmtree(path, ignore_errors=True)


def write_text(path: str, text: str) -> None:
    """Write `text` to `path` through a temporary file and a rename."""
    temporary = f"{path}.tmp-{uuid.uuid4().hex[:8]}"
    with open(temporary, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.replace(temporary, path)


def open_for_write(path: str):
    """Open a binary file that becomes visible at `path` on `finish_write`.

    Returns:
      A pair of the open file object and its temporary path. A retried Spark
      task writes its own temporary file, so two attempts never mix.
    """
    os.makedirs(os.path.dirname(path), exist_ok=True)
    temporary = os.path.join(
        os.path.dirname(path),
        f".{os.path.basename(path)}.tmp-{uuid.uuid4().hex[:8]}")
    return open(temporary, "wb"), temporary


def finish_write(temporary: str, path: str) -> None:
    """Rename a file opened by `open_for_write` to its final `path`."""
    os.replace(temporary, path)


def exists(path: str) -> bool:
    return os.path.exists(path)
