"""Zip archive of the project's Python packages for Spark's `--py-files`."""

import os
import zipfile
from typing import Sequence

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Packages that the Spark example job imports on the driver and executors.
# Executors write gs:// output through `cloud.paths`.
SPARK_JOB_PACKAGES = ("spark", "schemas", "cloud")

# Zip entries get this fixed timestamp (the earliest a zip file can store), so
# the archive of unchanged sources has the same bytes on every build.
_FIXED_DATE_TIME = (1980, 1, 1, 0, 0, 0)
_SKIPPED_DIRECTORIES = ("__pycache__",)
_SKIPPED_SUFFIXES = (".pyc", ".pyo")


def build_package_zip(output_path: str,
                      packages: Sequence[str] = SPARK_JOB_PACKAGES,
                      repo_root: str = REPO_ROOT) -> str:
    """Write the given top-level packages of `repo_root` into a zip archive.

    Entries keep their paths relative to `repo_root` (`spark/job.py`), which is
    the layout Python's zip importer needs when the archive is on `sys.path`.
    Package data such as `schemas/*.pbtxt` is included too. Hidden files,
    `__pycache__` directories and compiled files are left out.

    Args:
        output_path: Zip file to create or replace.
        packages: Names of package directories directly below `repo_root`.
        repo_root: Directory that contains the packages.

    Returns:
        `output_path`.

    Raises:
        ValueError: A package directory or its `__init__.py` is missing.
    """
    entries = []
    for package in packages:
        package_dir = os.path.join(repo_root, package)
        if not os.path.isfile(os.path.join(package_dir, "__init__.py")):
            raise ValueError(
                f"Cannot package {package!r}: {package_dir}/__init__.py not "
                f"found. Pass the names of package directories below "
                f"{repo_root}.")
        entries.extend(_package_files(package_dir, repo_root))

    with zipfile.ZipFile(output_path, "w", zipfile.ZIP_DEFLATED) as archive:
        for relative_path in sorted(entries):
            info = zipfile.ZipInfo(relative_path.replace(os.sep, "/"),
                                   date_time=_FIXED_DATE_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16  # rw-r--r-- regular file
            with open(os.path.join(repo_root, relative_path), "rb") as file:
                archive.writestr(info, file.read())
    return output_path


def _package_files(package_dir: str, repo_root: str):
    for directory, subdirectories, file_names in os.walk(package_dir):
        subdirectories[:] = [
            name for name in subdirectories
            if name not in _SKIPPED_DIRECTORIES and not name.startswith(".")
        ]
        for name in file_names:
            if name.startswith(".") or name.endswith(_SKIPPED_SUFFIXES):
                continue
            yield os.path.relpath(os.path.join(directory, name), repo_root)
