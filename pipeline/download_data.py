"""Download a public ratings data set for the pipeline.

    python -m pipeline.download_data movielens-small --dest data/
    python -m pipeline.download_data amazon-luxury-beauty --dest data/

Prints the path of the ratings file and the `--layout` to run it with. The
pipeline itself never downloads anything: without a ratings file it runs on
generated data, so it works on a machine with no network.
"""

import argparse
import dataclasses
import io
import os
import shutil
import sys
import tempfile
import urllib.error
import urllib.request
import zipfile
from typing import Dict, List, Optional

# Seconds to wait for the server before giving up on a connection or read.
TIMEOUT_SECONDS = 60


@dataclasses.dataclass(frozen=True)
class Dataset:
  """Location of a data set and of the ratings file inside it."""

  url: str
  layout: str
  file_name: str
  # Member of the zip archive that contains the ratings, or None for a plain
  # file.
  zip_member: Optional[str]
  citation: str


DATASETS: Dict[str, Dataset] = {
    "movielens-small": Dataset(
        url="https://files.grouplens.org/datasets/movielens/ml-latest-small.zip",
        layout="movielens",
        file_name="movielens-small-ratings.csv",
        zip_member="ml-latest-small/ratings.csv",
        citation=("F. Maxwell Harper and Joseph A. Konstan, The MovieLens "
                  "Datasets: History and Context, ACM TiiS 5(4), 2015. See the "
                  "archive's README.txt for the usage licence.")),
    "amazon-luxury-beauty": Dataset(
        url=("https://mcauleylab.ucsd.edu/public_datasets/data/amazon_v2/"
             "categoryFilesSmall/Luxury_Beauty.csv"),
        layout="amazon",
        file_name="amazon-luxury-beauty-ratings.csv",
        zip_member=None,
        citation=("Jianmo Ni, Jiacheng Li, Julian McAuley, Justifying "
                  "recommendations using distantly-labeled reviews and "
                  "fine-grained aspects, EMNLP 2019. Released for research "
                  "use.")),
}


class DownloadError(RuntimeError):
  """The data set could not be fetched or unpacked."""


def _fetch(url: str) -> bytes:
  try:
    with urllib.request.urlopen(url, timeout=TIMEOUT_SECONDS) as response:
      return response.read()
  except urllib.error.HTTPError as error:
    # The server was reached, so the machine is online: the file is gone.
    raise DownloadError(
        f"could not download {url}: the server returned HTTP {error.code} "
        f"({error.reason}). The data set may have moved; give its new "
        "address with --url.") from None
  except (urllib.error.URLError, OSError) as error:
    reason = getattr(error, "reason", error)
    raise DownloadError(
        f"could not download {url}: {reason}. This machine may be offline "
        "or the address may have moved. Download the file on a machine with "
        "network access and pass its path to `python -m pipeline.run "
        "--ratings PATH --layout LAYOUT`, or give another address with "
        "--url.") from None


def download(name: str, dest: str, url: Optional[str] = None) -> str:
  """Download data set `name` into `dest` and return the ratings file path.

  The file is written under a temporary name and renamed when complete, so
  an interrupted download never leaves a truncated ratings file behind.
  """
  if name not in DATASETS:
    raise ValueError(f"unknown data set {name!r}; choose one of "
                     f"{sorted(DATASETS)}")
  dataset = DATASETS[name]
  payload = _fetch(url or dataset.url)
  if dataset.zip_member:
    try:
      with zipfile.ZipFile(io.BytesIO(payload)) as archive:
        payload = archive.read(dataset.zip_member)
    except (zipfile.BadZipFile, KeyError) as error:
      raise DownloadError(
          f"the download from {url or dataset.url} is not the expected zip "
          f"archive with {dataset.zip_member}: {error}") from None

  os.makedirs(dest, exist_ok=True)
  path = os.path.join(dest, dataset.file_name)
  with tempfile.NamedTemporaryFile(dir=dest, delete=False,
                                   prefix=".download-") as partial:
    partial.write(payload)
  shutil.move(partial.name, path)
  return path


def main(argv: Optional[List[str]] = None) -> int:
  parser = argparse.ArgumentParser(
      prog="python -m pipeline.download_data",
      description="Download a public ratings data set.")
  parser.add_argument("name", choices=sorted(DATASETS))
  parser.add_argument("--dest", default="data",
                      help="Directory to write the ratings file to.")
  parser.add_argument("--url", help="Download from this address instead of "
                      "the data set's usual one, e.g. a mirror.")
  args = parser.parse_args(argv)
  try:
    path = download(args.name, args.dest, args.url)
  except DownloadError as error:
    print(f"error: {error}", file=sys.stderr)
    return 1
  dataset = DATASETS[args.name]
  print(f"Wrote {path}\nRun it with:\n  python -m pipeline.run --ratings {path} "
        f"--layout {dataset.layout}\nCite: {dataset.citation}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
