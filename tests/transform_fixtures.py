"""Build a real Transform output from a few hand-written rows, for tests."""

import os
import tempfile

import tensorflow_transform as tft
import tensorflow_transform.beam as tft_beam
from tensorflow_transform.tf_metadata import dataset_metadata
from tensorflow_transform.tf_metadata import metadata_io

from schemas import features
from schemas import schema_files
from transform import preprocessing


def row(user, product, touched=(), liked=(), disliked=(), target=1,
        timestamp=0):
  """Return one raw training example as TFT's instance dict."""
  return {
      features.TIMESTAMP: [timestamp],
      features.USER_ID: [user],
      features.PRODUCT_ID: [product],
      features.TOUCHED: list(touched),
      features.LIKED: list(liked),
      features.DISLIKED: list(disliked),
      features.TARGET: [target],
  }


def analyze_and_transform(train_rows, eval_rows, window, num_oov_buckets=1):
  """Run tf.Transform on Beam's DirectRunner.

  Returns:
    (transformed train rows, transformed eval rows, TFTransformOutput).
  """
  schema = schema_files.schema_for_window(schema_files.EXAMPLES_SCHEMA, window)
  metadata = dataset_metadata.DatasetMetadata(schema)
  work_dir = tempfile.mkdtemp()
  fn = preprocessing.build_preprocessing_fn(
      window=window, num_oov_buckets=num_oov_buckets, min_item_count=1)
  with tft_beam.Context(temp_dir=work_dir, force_tf_compat_v1=False):
    (train_out, _), transform_fn = (
        (train_rows, metadata) | tft_beam.AnalyzeAndTransformDataset(fn))
    eval_out, _ = (((eval_rows, metadata), transform_fn)
                   | tft_beam.TransformDataset())
    output_dir = os.path.join(work_dir, "transform_output")
    _ = transform_fn | tft_beam.WriteTransformFn(output_dir)
  # TFX's Transform also stores the raw schema, which serving code reads.
  metadata_io.write_metadata(
      metadata, os.path.join(output_dir, tft.TFTransformOutput.RAW_METADATA_DIR))
  return train_out, eval_out, tft.TFTransformOutput(output_dir)
