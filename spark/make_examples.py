"""Command-line entry point of the example job, for spark-submit or Python.

    spark-submit spark/make_examples.py --input ratings.csv --output out/ \
        --layout movielens
    python -m spark.make_examples --input gs://bucket/ratings.csv \
        --output gs://bucket/examples/run1

On a cluster, ship the `spark`, `schemas` and `cloud` packages with
`--py-files` (a zip or wheel). When they are not importable, this file falls
back to the repository that contains it and ships a zip of the three
packages to the executors itself.
"""

import logging
import os
import sys
import tempfile
import zipfile

_HERE = os.path.dirname(os.path.abspath(__file__))
_REPO_ROOT = os.path.dirname(_HERE)

# spark-submit puts this file's directory first on sys.path, which would make
# modules such as `config` importable under bare names; drop it.
if sys.path and os.path.abspath(sys.path[0] or os.curdir) == _HERE:
    sys.path.pop(0)

try:
    from spark import job  # pylint: disable=g-import-not-at-top
    _SHIP_PACKAGES = False
except ImportError:
    sys.path.insert(0, _REPO_ROOT)
    from spark import job  # pylint: disable=g-import-not-at-top
    _SHIP_PACKAGES = True
from spark import config as job_config  # pylint: disable=g-import-not-at-top
from spark import ratings_reader  # pylint: disable=g-import-not-at-top
from spark import output_files  # pylint: disable=g-import-not-at-top


def _zip_packages(directory: str) -> str:
    """Zip the job's packages for `SparkContext.addPyFile`."""
    path = os.path.join(directory, "make_examples_packages.zip")
    with zipfile.ZipFile(path, "w") as archive:
        for package in ("spark", "schemas", "cloud"):
            for root, _, names in os.walk(os.path.join(_REPO_ROOT, package)):
                for name in sorted(names):
                    if name.endswith(".py"):
                        full = os.path.join(root, name)
                        archive.write(full, os.path.relpath(full, _REPO_ROOT))
    return path


def main(argv=None) -> int:
    """Run the job from command-line arguments; return the exit status."""
    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = job_config.config_from_args(argv)
    try:
        # Checked before the JVM starts, so that a wrong path fails in a
        # second with one line instead of a Java stack trace.
        output_files.check_output_free(
            output_files.resolve_output_path(config.output_path),
            config.overwrite)
        ratings_reader.check_input_path(config.input_path)
        ratings_reader.check_layout(config.input_path, config.layout)
    except (ValueError, FileNotFoundError, output_files.OutputExistsError,
            NotImplementedError) as error:
        # ValueError covers InputDataError and invalid gs:// URIs, and
        # FileNotFoundError a missing output bucket.
        print(f"make_examples: error: {error}", file=sys.stderr)
        return 2

    session = job.create_session(config)
    try:
        if _SHIP_PACKAGES and "PYSPARK_GATEWAY_PORT" in os.environ:
            # Under spark-submit the executors started without this
            # repository on their path.
            session.sparkContext.addPyFile(_zip_packages(tempfile.mkdtemp()))
        summary = job.run_job(config, session)
    except (ratings_reader.InputDataError, ratings_reader.RejectedRowsError,
            output_files.OutputExistsError, FileNotFoundError,
            NotImplementedError) as error:
        print(f"make_examples: error: {error}", file=sys.stderr)
        return 2
    finally:
        session.stop()
    print(job.format_summary(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
