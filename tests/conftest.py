"""Process-wide test settings shared by every test module."""

import os
import sys

import pytest

# TFX 1.16 and TFMA 0.47 need Keras 2; this must be set before TensorFlow is
# imported anywhere in the test process.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")


@pytest.fixture(scope="session")
def spark():
    """One local Spark session for the whole test run, on the loopback only."""
    # Imported here so that test modules without Spark do not need pyspark.
    from pyspark.sql import SparkSession

    repo_root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    # Python workers are separate processes: they need this interpreter and
    # the repository's packages on their path.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    paths = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    if repo_root not in paths:
        os.environ["PYTHONPATH"] = os.pathsep.join([repo_root] + paths)

    session = (
        SparkSession.builder.master("local[2]")
        .appName("tests")
        .config("spark.driver.memory", "2g")
        .config("spark.sql.shuffle.partitions", "4")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()
