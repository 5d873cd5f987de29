"""A fingerprint of the code that the TFX components import by module path.

TFX keys its cache on component inputs and execution properties. Transform,
Trainer and Evaluator reach this project's code through module paths
(`transform.preprocessing.preprocessing_fn`, `trainer.task.run_fn`, the
TFMA metric's module), which TFX does not hash, so after a code change a
re-run would silently reuse outputs of the old code. The pipeline puts this
fingerprint into each of those components' properties instead.
"""

import hashlib
import os
from typing import Iterable

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Packages whose code runs inside Transform, Trainer or Evaluator.
COMPONENT_PACKAGES = ("schemas", "transform", "trainer", "evaluation")
_SOURCE_SUFFIXES = (".py", ".pbtxt")


def _source_files(root: str, packages: Iterable[str]):
  for package in packages:
    for directory, subdirectories, names in os.walk(os.path.join(root, package)):
      subdirectories[:] = sorted(d for d in subdirectories
                                 if d != "__pycache__")
      for name in sorted(names):
        if name.endswith(_SOURCE_SUFFIXES):
          yield os.path.join(directory, name)


def code_version(root: str = REPO_ROOT,
                 packages: Iterable[str] = COMPONENT_PACKAGES) -> str:
  """Return a short SHA-256 over the paths and contents of the source files."""
  digest = hashlib.sha256()
  for path in _source_files(root, packages):
    digest.update(os.path.relpath(path, root).encode("utf-8") + b"\0")
    with open(path, "rb") as source:
      digest.update(source.read())
    digest.update(b"\0")
  return digest.hexdigest()[:16]
