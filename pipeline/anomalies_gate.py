"""A component that stops the run when ExampleValidator found anomalies.

ExampleValidator in TFX 1.16 records anomalies but lets the run continue.
Transform depends on this gate, so a schema violation stops the pipeline
before any training, with the anomalies named in the error.
"""

import os

from tensorflow_metadata.proto.v0 import anomalies_pb2
from tfx import v1 as tfx
from tfx.types import artifact_utils
from tfx.types import standard_artifact_utils
from tfx.utils import io_utils

# File that ExampleValidator writes in each split's directory.
ANOMALIES_FILE = "SchemaDiff.pb"


class AnomaliesFoundError(RuntimeError):
  """The examples do not match the curated schema."""


def describe_anomalies(anomalies: anomalies_pb2.Anomalies) -> list:
  """Return one readable line per anomaly."""
  lines = []
  for feature, info in sorted(anomalies.anomaly_info.items()):
    lines.append(f"feature '{feature}': {info.short_description}: "
                 f"{info.description}")
  if anomalies.HasField("dataset_anomaly_info"):
    info = anomalies.dataset_anomaly_info
    lines.append(f"dataset: {info.short_description}: {info.description}")
  return lines


def check_anomalies(anomalies_artifact) -> None:
  """Raise AnomaliesFoundError if any split's anomalies file is not empty."""
  problems = []
  for split in artifact_utils.decode_split_names(anomalies_artifact.split_names):
    path = os.path.join(
        standard_artifact_utils.get_split_uri([anomalies_artifact], split),
        ANOMALIES_FILE)
    anomalies = anomalies_pb2.Anomalies()
    anomalies.ParseFromString(io_utils.read_bytes_file(path))
    problems.extend(f"split '{split}', {line}"
                    for line in describe_anomalies(anomalies))
  if problems:
    raise AnomaliesFoundError(
        "the examples do not match the schema, so training was not started:\n  "
        + "\n  ".join(problems) +
        "\nFix the input data, or update the curated schema in schemas/ if "
        "the data is right.")


@tfx.dsl.components.component
def AnomaliesGate(  # pylint: disable=invalid-name
    anomalies: tfx.dsl.components.InputArtifact[
        tfx.types.standard_artifacts.ExampleAnomalies]) -> None:
  """Fail when ExampleValidator reported any anomaly."""
  check_anomalies(anomalies)
