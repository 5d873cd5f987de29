"""Reading of ratings CSV files: layouts, validation and rejected rows.

Lines are read as text and split on commas into four string fields, so that
every malformed line can be kept with a reason instead of being dropped or
turned into nulls by the CSV parser. Quoted fields are not supported: none of
the supported layouts quotes its fields.
"""

import dataclasses
import glob
import os
from typing import Dict

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

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


class InputDataError(ValueError):
    """Raised when the input path is missing, empty or unreadable as ratings."""


class RejectedRowsError(ValueError):
    """Raised when the share of invalid input rows exceeds the allowed limit."""


def check_input_path(path: str) -> None:
    """Raise `InputDataError` unless `path` names at least one non-empty file.

    Checking on the driver before Spark reads the path turns a missing file
    into one readable message instead of a Java stack trace.

    Args:
      path: Local file, directory or glob pattern.
    """
    if "://" in path and not path.startswith("file://"):
        raise NotImplementedError(
            f"Input {path!r}: only local paths are supported so far; copy the "
            f"file to local disk first.")
    local_path = path[len("file://"):] if path.startswith("file://") else path
    if os.path.isdir(local_path):
        files = [os.path.join(local_path, name)
                 for name in os.listdir(local_path)
                 if not name.startswith((".", "_"))]
    else:
        files = glob.glob(local_path)
    files = [name for name in files if os.path.isfile(name)]
    if not files:
        raise InputDataError(
            f"Input ratings file not found: {path!r}. Pass an existing CSV "
            f"file, directory or glob with --input.")
    if all(os.path.getsize(name) == 0 for name in files):
        raise InputDataError(
            f"Input ratings file is empty: {path!r}. It must contain at least "
            f"one rating row.")


def classify_lines(spark: SparkSession, path: str,
                   layout: RatingsLayout) -> DataFrame:
    """Read ratings lines and mark each one valid or rejected.

    Args:
      spark: Active session.
      path: Local file, directory or glob of CSV files.
      layout: Column order, header and rating range of the files.

    Returns:
      One row per input line except header lines, with the string columns
      USER and ITEM, RATING (double), TIMESTAMP (long, Unix seconds),
      REASON (null for a valid row, else one of REJECT_KINDS), RAW_LINE and
      SOURCE_FILE. Typed columns are null on rejected rows.
    """
    lines = spark.read.text(path).select(
        # Files written on Windows end lines with CRLF.
        F.regexp_replace(F.col("value"), "\r$", "").alias(RAW_LINE),
        F.input_file_name().alias(SOURCE_FILE))
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
