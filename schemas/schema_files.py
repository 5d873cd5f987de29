"""Curated schema files and their adjustment to the configured window."""

import os

from google.protobuf import text_format
from tensorflow_metadata.proto.v0 import schema_pb2

from schemas import features

SCHEMA_DIR = os.path.dirname(os.path.abspath(__file__))
EXAMPLES_SCHEMA = os.path.join(SCHEMA_DIR, "schema.pbtxt")
HOLDOUT_SCHEMA = os.path.join(SCHEMA_DIR, "holdout_schema.pbtxt")
# ImportSchemaGen copies exactly one file, so each schema lives in its own
# directory under the pipeline root; the file name is what TFX components
# look for.
SCHEMA_FILE_NAME = "schema.pbtxt"


def load_schema(path: str) -> schema_pb2.Schema:
  """Parse a text-format schema file."""
  with open(path, encoding="utf-8") as schema_file:
    return text_format.Parse(schema_file.read(), schema_pb2.Schema())


def schema_for_window(path: str, window: int) -> schema_pb2.Schema:
  """Load a curated schema and set the history lists' maximum length.

  Args:
    path: A curated schema file.
    window: N, the number of past items the Spark job keeps per example.

  Returns:
    The schema with `value_count.max` of every history list set to `window`.
  """
  if window < 1:
    raise ValueError(f"window must be at least 1, got {window}")
  schema = load_schema(path)
  for feature in schema.feature:
    if feature.name in features.HISTORY_FEATURES:
      feature.value_count.max = window
  return schema


def write_schema(schema: schema_pb2.Schema, directory: str) -> str:
  """Write `schema` as `directory/schema.pbtxt` and return the file path.

  `directory` may be local or `gs://`; TensorFlow's file API handles both.
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  tf.io.gfile.makedirs(directory)
  path = os.path.join(directory, SCHEMA_FILE_NAME)
  with tf.io.gfile.GFile(path, "w") as schema_file:
    schema_file.write(text_format.MessageToString(schema))
  return path
