"""Reading of ratings CSV files: layouts, validation and rejected rows.

Lines are read as text and split on commas into four string fields, so that
every malformed line can be kept with a reason instead of being dropped or
turned into nulls by the CSV parser. Quoted fields are not supported: none of
the supported layouts quotes its fields.
"""

import contextlib
import dataclasses
import glob
import logging
import os
import posixpath
import shutil
import tempfile
from typing import Dict, Iterator, List, Optional, Union

from py4j.protocol import Py4JJavaError
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from cloud import paths as cloud_paths
from spark import output_files

# Column names of validated ratings.
USER = "user"
ITEM = "item"
RATING = "rating"
TIMESTAMP = "timestamp"
# Columns of the classified rows and of the files under `<output>/rejects/`.
REASON = "reason"
RAW_LINE = "raw_line"
SOURCE_FILE = "source_file"

# Kinds of rejected rows, as stored in the REASON column and summary.json.
WRONG_FIELD_COUNT = "wrong_field_count"
EMPTY_ID = "empty_id"
NON_NUMERIC_RATING = "non_numeric_rating"
NON_NUMERIC_TIMESTAMP = "non_numeric_timestamp"
RATING_OUT_OF_RANGE = "rating_out_of_range"
REJECT_KINDS = (WRONG_FIELD_COUNT, EMPTY_ID, NON_NUMERIC_RATING,
                NON_NUMERIC_TIMESTAMP, RATING_OUT_OF_RANGE)

# A decimal number as Python and Spark print it; `NaN` and `Infinity` are not
# ratings even though Spark casts them to double.
_NUMBER_PATTERN = r"^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?$"
# Unix seconds; 18 digits keep the value inside a signed 64-bit integer.
_INTEGER_PATTERN = r"^-?[0-9]{1,18}$"


@dataclasses.dataclass(frozen=True)
class RatingsLayout:
    """Column order, header and rating range of one ratings file format."""

    name: str
    # Field positions of user, item, rating and timestamp in a line.
    user_field: int
    item_field: int
    rating_field: int
    timestamp_field: int
    header: str  # Exact first line to skip; empty when the files have none.
    min_rating: float
    max_rating: float


LAYOUTS: Dict[str, RatingsLayout] = {
    # Amazon Review Data (2018) ratings-only files.
    "amazon": RatingsLayout(
        name="amazon", item_field=0, user_field=1, rating_field=2,
        timestamp_field=3, header="", min_rating=1.0, max_rating=5.0),
    # MovieLens ratings.csv (ml-latest-small and larger releases).
    "movielens": RatingsLayout(
        name="movielens", user_field=0, item_field=1, rating_field=2,
        timestamp_field=3, header="userId,movieId,rating,timestamp",
        min_rating=0.5, max_rating=5.0),
}


_LOG = logging.getLogger(__name__)


class InputDataError(ValueError):
    """Raised when the input path is missing, empty or unreadable as ratings."""


class RejectedRowsError(ValueError):
    """Raised when the share of invalid input rows exceeds the allowed limit."""


def check_input_path(path: str) -> None:
    """Raise `InputDataError` unless `path` names at least one non-empty file.

    Checking on the driver before Spark reads the path turns a missing file
    into one readable message instead of a Java stack trace.

    Args:
      path: Local file, directory or glob pattern, or the same as a `gs://`
        URI (an object, a prefix or a glob).

    Raises:
      InputDataError: No file or object matches, or all of them are empty.
      NotImplementedError: `path` has a URL scheme other than `file://` and
        `gs://`.
    """
    sizes = list(_list_input_files(path).values())
    if not sizes:
        raise InputDataError(
            f"Input ratings file not found: {path!r}"
            f"{_missing_bucket_note(path)}. Pass an existing CSV file, "
            f"directory or glob with --input.")
    if not any(sizes):
        raise InputDataError(
            f"Input ratings file is empty: {path!r}. It must contain at least "
            f"one rating row.")


def _first_line(name: str) -> str:
    """Return the first line of a local file or `gs://` object, decoded."""
    if cloud_paths.is_gcs_path(name):
        opened = output_files.gcs_filesystem().open(name, "rb")
    else:
        opened = open(name[len("file://"):] if name.startswith("file://")
                      else name, "rb")
    with opened as handle:
        # A bounded read: a file without line breaks is not loaded whole.
        start = handle.read(4096)
    return start.split(b"\n", 1)[0].decode("utf-8", "replace").rstrip("\r")


def check_layout(path: str, layout_name: str) -> None:
    """Raise `InputDataError` when the first file's header contradicts the layout.

    A MovieLens file read as `amazon` would only be caught if enough of its
    rows fell outside the Amazon rating range, and an Amazon file read as
    `movielens` would swap users and items without one rejected row, so the
    header decides on the driver before any work starts.

    Args:
      path: As for `check_input_path`, which must have passed.
      layout_name: A key of LAYOUTS.
    """
    files = sorted(name for name, size in _list_input_files(path).items()
                   if size)
    if not files:
        return
    first = _first_line(files[0])
    movielens_header = LAYOUTS["movielens"].header
    layout = LAYOUTS[layout_name]
    if layout.header and first != layout.header:
        raise InputDataError(
            f"Input {files[0]!r} does not start with the {layout.name} header "
            f"{layout.header!r} (its first line is {first[:80]!r}). Check "
            f"--layout: Amazon ratings files have no header and use 'amazon'.")
    if not layout.header and first == movielens_header:
        raise InputDataError(
            f"Input {files[0]!r} starts with the MovieLens header "
            f"{movielens_header!r}, but the layout is {layout.name!r}. Use "
            f"--layout movielens.")


def _list_input_files(path: str) -> Dict[str, int]:
    """Return the files or `gs://` objects that `path` names, with sizes.

    A directory or prefix stands for the files directly in it whose names
    do not start with `.` or `_`, as Hadoop's input formats skip those.
    """
    if cloud_paths.is_gcs_path(path):
        return _list_gcs_input(path)
    if "://" in path and not path.startswith("file://"):
        raise NotImplementedError(
            f"Input {path!r}: only local paths and gs:// URIs are supported; "
            f"copy the file to local disk or Cloud Storage first.")
    local_path = path[len("file://"):] if path.startswith("file://") else path
    if os.path.isdir(local_path):
        files = [os.path.join(local_path, name)
                 for name in os.listdir(local_path)
                 if not name.startswith((".", "_"))]
    else:
        files = glob.glob(local_path)
    return {name: os.path.getsize(name) for name in files
            if os.path.isfile(name)}


def _list_gcs_input(uri: str) -> Dict[str, int]:
    """Return the objects that a `gs://` object, prefix or glob names."""
    parsed = cloud_paths.parse_gcs_uri(uri)
    filesystem = output_files.gcs_filesystem()
    pattern = f"{parsed.bucket}/{parsed.name}"
    try:
        if any(character in parsed.name for character in "*?["):
            found = filesystem.glob(pattern, detail=True)
        else:
            info = filesystem.info(pattern)
            if info["type"] == "directory":
                entries = filesystem.ls(pattern, detail=True)
                found = {entry["name"]: entry for entry in entries
                         if not posixpath.basename(entry["name"].rstrip("/"))
                         .startswith((".", "_"))}
            else:
                found = {info["name"]: info}
    except FileNotFoundError:
        return {}
    return {f"{cloud_paths.GCS_SCHEME}{name}": int(entry["size"])
            for name, entry in found.items()
            if entry["type"] == "file" and not name.endswith("/")}


def _missing_bucket_note(path: str) -> str:
    if not cloud_paths.is_gcs_path(path):
        return ""
    parsed = cloud_paths.parse_gcs_uri(path)
    try:
        # gcsfs raises FileNotFoundError when listing a missing bucket, and
        # listing needs no permission on the bucket's metadata.
        output_files.gcs_filesystem().find(f"{parsed.bucket}/{parsed.name}")
    except FileNotFoundError:
        return f" (bucket gs://{parsed.bucket} does not exist)"
    return ""


@dataclasses.dataclass(frozen=True)
class SparkInput:
    """The paths that Spark reads for one `--input`.

    Attributes:
      paths: Files, directories, globs or `gs://` URIs for `spark.read.text`.
      copied_uris: Set when `gs://` objects were copied to local files because
        the session cannot read `gs://`. Local file `paths[i]` is named
        `<i>-<object base name>` and is a copy of `copied_uris[i]`.
    """

    paths: List[str]
    copied_uris: Optional[List[str]] = None


def session_reads_gcs(spark: SparkSession) -> bool:
    """Return whether the session's Hadoop setup has a `gs` file system.

    Dataproc images ship the Cloud Storage connector. The pyspark package from
    PyPI has none, so local mode cannot read `gs://` paths itself.
    """
    # pylint: disable=protected-access
    # PySpark has no public API for Hadoop file systems, so this goes through
    # the Py4J gateway (_jvm) and the Java context (_jsc).
    context = spark.sparkContext
    hadoop_configuration = context._jsc.hadoopConfiguration()
    file_system_class = context._jvm.org.apache.hadoop.fs.FileSystem
    try:
        file_system_class.getFileSystemClass("gs", hadoop_configuration)
    except Py4JJavaError:
        return False
    return True


@contextlib.contextmanager
def spark_input(spark: SparkSession, path: str) -> Iterator[SparkInput]:
    """Yield the paths that Spark reads for `path`, copying `gs://` input.

    A local path, or a `gs://` URI when the session reads `gs://` itself (on
    Dataproc), is passed to Spark as is. Otherwise every object that `path`
    names is downloaded to a local temporary directory, which is deleted on
    exit. Keep the context open while Spark may still read the input.

    Raises:
      InputDataError: No object matches `path`, or all are empty.
    """
    if not cloud_paths.is_gcs_path(path) or session_reads_gcs(spark):
        yield SparkInput([path])
        return
    # Imported here because executors import this module too, and they need
    # neither google-cloud-storage nor absl.
    from cloud import storage  # pylint: disable=g-import-not-at-top

    check_input_path(path)
    uris = sorted(_list_input_files(path))
    directory = tempfile.mkdtemp(prefix="make_examples-input-")
    try:
        client = storage.make_client()
        local_paths = []
        for index, uri in enumerate(uris):
            base_name = posixpath.basename(cloud_paths.parse_gcs_uri(uri).name)
            local_path = os.path.join(directory, f"{index}-{base_name}")
            storage.download_file(uri, local_path, client=client)
            local_paths.append(local_path)
        copied_bytes = sum(os.path.getsize(name) for name in local_paths)
        _LOG.info("Copied %d objects (%d bytes) of %s to %s, because this "
                  "Spark session has no gs:// file system.", len(uris),
                  copied_bytes, path, directory)
        yield SparkInput(local_paths, uris)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def classify_lines(spark: SparkSession, source: Union[str, SparkInput],
                   layout: RatingsLayout) -> DataFrame:
    """Read ratings lines and mark each one valid or rejected.

    Args:
      spark: Active session.
      source: Local file, directory or glob of CSV files, or a `SparkInput`
        from `spark_input`. SOURCE_FILE names the `gs://` object of a local
        copy.
      layout: Column order, header and rating range of the files.

    Returns:
      One row per input line except header lines, with the string columns
      USER and ITEM, RATING (double), TIMESTAMP (long, Unix seconds),
      REASON (null for a valid row, else one of REJECT_KINDS), RAW_LINE and
      SOURCE_FILE. Typed columns are null on rejected rows.
    """
    if isinstance(source, str):
        source = SparkInput([source])
    source_file = F.input_file_name()
    if source.copied_uris:
        # The copy's name starts with the index of its object in copied_uris.
        index = F.regexp_extract(source_file, r"/([0-9]+)-[^/]*$", 1)
        source_file = F.element_at(
            F.array(*[F.lit(uri) for uri in source.copied_uris]),
            index.cast("int") + 1)
    lines = spark.read.text(source.paths).select(
        # Files written on Windows end lines with CRLF.
        F.regexp_replace(F.col("value"), "\r$", "").alias(RAW_LINE),
        source_file.alias(SOURCE_FILE))
    if layout.header:
        lines = lines.where(F.col(RAW_LINE) != F.lit(layout.header))

    fields = F.split(F.col(RAW_LINE), ",", -1)
    field_count = F.size(fields)

    def field(position: int) -> Column:
        return F.trim(F.element_at(fields, position + 1))

    user = field(layout.user_field)
    item = field(layout.item_field)
    rating_text = field(layout.rating_field)
    timestamp_text = field(layout.timestamp_field)
    rating = rating_text.cast("double")

    # One reason per row: the first check that fails, in this order.
    reason = (
        F.when(field_count != 4, F.lit(WRONG_FIELD_COUNT))
        .when((user == "") | (item == ""), F.lit(EMPTY_ID))
        .when(~rating_text.rlike(_NUMBER_PATTERN), F.lit(NON_NUMERIC_RATING))
        .when(~timestamp_text.rlike(_INTEGER_PATTERN),
              F.lit(NON_NUMERIC_TIMESTAMP))
        .when((rating < layout.min_rating) | (rating > layout.max_rating),
              F.lit(RATING_OUT_OF_RANGE)))
    valid = reason.isNull()

    return lines.select(
        F.when(valid, user).alias(USER),
        F.when(valid, item).alias(ITEM),
        F.when(valid, rating).alias(RATING),
        F.when(valid, timestamp_text.cast("long")).alias(TIMESTAMP),
        reason.alias(REASON),
        F.col(RAW_LINE),
        F.col(SOURCE_FILE))


def check_reject_share(path: str, rows_read: int, rejected: int,
                       max_fraction: float, rejects_path: str) -> None:
    """Raise `RejectedRowsError` when rejected rows exceed `max_fraction`.

    Args:
      path: Input path, named in the message.
      rows_read: Data lines read, header excluded.
      rejected: Lines rejected as invalid.
      max_fraction: Largest accepted share of rejected lines.
      rejects_path: Where the rejected lines were written, named in the
        message so that they can be inspected.
    """
    if rows_read == 0:
        raise InputDataError(
            f"Input {path!r} contains no rating rows (only a header or blank "
            f"lines).")
    share = rejected / rows_read
    if share > max_fraction:
        raise RejectedRowsError(
            f"{rejected} of {rows_read} rows ({share:.2%}) in {path!r} are "
            f"invalid, more than the limit of {max_fraction:.2%}. Check the "
            f"--layout, inspect the rejected rows in {rejects_path}, or raise "
            f"the limit with --max-reject-fraction.")
