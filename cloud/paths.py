"""Path helpers that treat `gs://` URIs and local paths alike.

This module enforces these rules of the Cloud Storage naming guidelines for
buckets and objects. Bucket names are 3 to 63 characters of lowercase letters,
digits, `-`, `_` and `.`, and start and end with a letter or digit. Dotted
names may reach 222 characters, with each dot-separated part at most 63
characters. Object names are at most 1024 bytes of UTF-8, contain no carriage
return or line feed, and are not `.` or `..`.
"""

import os
import posixpath
import re
from typing import Any, Dict, NamedTuple, Union

import fsspec

GCS_SCHEME = "gs://"
# Standard variable read by google-cloud-storage and gcsfs to reach an
# emulator (for example `http://127.0.0.1:4443`) in place of Cloud Storage.
EMULATOR_HOST_ENV = "STORAGE_EMULATOR_HOST"

_BUCKET_PART = re.compile(r"^[a-z0-9](?:[a-z0-9_-]*[a-z0-9])?$")
_BUCKET_CHARS = re.compile(r"^[a-z0-9._-]+$")
_MAX_OBJECT_NAME_BYTES = 1024

PathLike = Union[str, "os.PathLike[str]"]


class GcsUri(NamedTuple):
    """A parsed `gs://bucket/name` URI.

    Attributes:
        bucket: Bucket name.
        name: Object name or prefix inside the bucket, without a leading `/`;
            empty for the bucket itself. A trailing `/` is kept, because it
            marks a prefix ("directory") as opposed to an object.
    """

    bucket: str
    name: str

    def __str__(self) -> str:
        return f"{GCS_SCHEME}{self.bucket}/{self.name}"

    def join(self, *parts: str) -> "GcsUri":
        """Return the URI of `parts` below this prefix, joined with `/`."""
        name = self.name
        for part in parts:
            part = part.strip("/")
            if not part:
                continue
            name = f"{name.rstrip('/')}/{part}" if name else part
        return GcsUri(self.bucket, name)

    def as_prefix(self) -> "GcsUri":
        """Return this URI with exactly one trailing `/` (bucket root: none).

        Listing `gs://b/run1/` does not match `gs://b/run10/...`, while listing
        `gs://b/run1` would.
        """
        if not self.name:
            return self
        return GcsUri(self.bucket, self.name.rstrip("/") + "/")


def is_gcs_path(path: PathLike) -> bool:
    """Return True if `path` is a `gs://` URI (the scheme is case-sensitive)."""
    return os.fspath(path).startswith(GCS_SCHEME)


def parse_gcs_uri(uri: str) -> GcsUri:
    """Split `gs://bucket/name` into bucket and object name.

    Args:
        uri: A `gs://` URI. `gs://bucket` and `gs://bucket/` name the bucket.

    Returns:
        The bucket and the object name (empty for the bucket itself).

    Raises:
        ValueError: `uri` does not start with `gs://`, or its bucket or object
            name breaks the Cloud Storage naming rules listed in this module's
            docstring.
    """
    if not isinstance(uri, str) or not uri.startswith(GCS_SCHEME):
        raise ValueError(
            f"Invalid Cloud Storage URI {uri!r}: expected the form "
            f"gs://BUCKET/OBJECT.")
    bucket, _, name = uri[len(GCS_SCHEME):].partition("/")
    _check_bucket_name(bucket, uri)
    _check_object_name(name, uri)
    return GcsUri(bucket, name)


def _check_bucket_name(bucket: str, uri: str) -> None:
    if not bucket:
        raise ValueError(
            f"Invalid Cloud Storage URI {uri!r}: the bucket name is empty; "
            f"expected gs://BUCKET/OBJECT.")
    max_length = 222 if "." in bucket else 63
    parts = bucket.split(".")
    if (not 3 <= len(bucket) <= max_length
            or not _BUCKET_CHARS.match(bucket)
            or not all(_BUCKET_PART.match(part) and len(part) <= 63
                       for part in parts)):
        raise ValueError(
            f"Invalid bucket name {bucket!r} in {uri!r}: bucket names are 3 to "
            f"63 characters (222 when dotted) of lowercase letters, digits, "
            f"'-', '_' and '.', and start and end with a letter or digit.")


def _check_object_name(name: str, uri: str) -> None:
    if "\r" in name or "\n" in name:
        raise ValueError(
            f"Invalid object name in {uri!r}: it contains a carriage return or "
            f"line feed.")
    if len(name.encode("utf-8")) > _MAX_OBJECT_NAME_BYTES:
        raise ValueError(
            f"Invalid object name in {uri[:80]!r}...: it is longer than "
            f"{_MAX_OBJECT_NAME_BYTES} bytes of UTF-8.")
    if name in (".", ".."):
        raise ValueError(
            f"Invalid object name {name!r} in {uri!r}: Cloud Storage rejects "
            f"'.' and '..'.")


def join_path(base: PathLike, *parts: str) -> str:
    """Join path components under a local directory or a `gs://` prefix.

    `gs://` URIs are joined with `/` whatever the operating system, and a
    leading `/` in a part does not discard `base` as it would in
    `os.path.join`.
    """
    base = os.fspath(base)
    if is_gcs_path(base):
        return str(parse_gcs_uri(base).join(*parts))
    return os.path.join(base, *parts)


def fsspec_storage_options(path: PathLike) -> Dict[str, Any]:
    """Return the fsspec options that `fsspec.open(path, ...)` needs.

    For `gs://` paths the options select the credentials of gcsfs: anonymous ones
    when `STORAGE_EMULATOR_HOST` is set, and Application Default Credentials
    otherwise. Without an explicit token gcsfs would fall back to anonymous
    access when no credentials are found, and a missing login would show up
    later as a 401 or 403 on the first private object.
    """
    if not is_gcs_path(path):
        return {}
    if os.environ.get(EMULATOR_HOST_ENV):
        return {"token": "anon"}
    return {"token": "google_default"}


def open_file(path: PathLike, mode: str = "rb", **kwargs: Any):
    """Open a local file or a `gs://` object through fsspec.

    Args:
        path: Local path or `gs://` URI.
        mode: File mode as for `open` (`rb`, `wb`, `r`, `w`).
        **kwargs: Passed to `fsspec.open`, for example `compression="gzip"`.

    Returns:
        An `fsspec.core.OpenFile`; use it in a `with` statement.
    """
    path = os.fspath(path)
    options = fsspec_storage_options(path)
    options.update(kwargs)
    return fsspec.open(path, mode, **options)
