"""Benchmark of the Spark example job on synthetic Luxury-Beauty-sized data.

For each scale the script writes seeded synthetic ratings (cached in the work
directory), runs `python -m spark.make_examples` in a subprocess and reports
wall time, input rows per second and the peak resident memory of the whole
process tree. That tree is the Python driver, its JVM and the Python workers.
It also reports the mean load average during the run, because other work on
the machine lengthens the wall time.

    python benchmarks/spark_job_benchmark.py --scales 1 10

This is a measurement, not a test; record the results in docs/benchmarks.md
together with the machine they ran on.
"""

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time

import psutil

_REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, _REPO_ROOT)

from spark import synthetic_ratings  # pylint: disable=g-import-not-at-top

# Seconds between two memory samples of the process tree.
_SAMPLE_INTERVAL = 0.2


def _tree_rss(process: psutil.Process) -> int:
    """Return the summed resident set size of a process and its descendants."""
    total = 0
    for member in [process] + process.children(recursive=True):
        try:
            total += member.memory_info().rss
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue  # The process ended between listing and sampling.
    return total


def run_once(input_path: str, output_path: str, master: str,
             driver_memory: str, num_shards: int) -> dict:
    """Run the job once in a subprocess and measure it."""
    command = [
        sys.executable, "-m", "spark.make_examples",
        "--input", input_path, "--output", output_path, "--overwrite",
        "--master", master, "--driver-memory", driver_memory,
        "--num-shards", str(num_shards),
    ]
    log_path = f"{output_path}.log"
    started = time.monotonic()
    peak = 0
    load_samples = []
    with open(log_path, "w", encoding="utf-8") as log:
        process = subprocess.Popen(command, cwd=_REPO_ROOT, stdout=log,
                                   stderr=subprocess.STDOUT)
        watched = psutil.Process(process.pid)
        while process.poll() is None:
            try:
                peak = max(peak, _tree_rss(watched))
            except psutil.NoSuchProcess:
                break
            load_samples.append(os.getloadavg()[0])
            time.sleep(_SAMPLE_INTERVAL)
    wall = time.monotonic() - started
    if process.returncode != 0:
        raise RuntimeError(
            f"make_examples failed with exit status {process.returncode}; "
            f"see {log_path}")
    with open(os.path.join(output_path, "summary.json"),
              encoding="utf-8") as handle:
        summary = json.load(handle)
    # Other processes on the machine slow the job down; the mean 1-minute
    # load average during the run shows how busy the machine was.
    mean_load = sum(load_samples) / max(1, len(load_samples))
    return {"wall_seconds": wall, "peak_rss_bytes": peak,
            "mean_load": mean_load, "summary": summary}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scales", type=float, nargs="+", default=[1.0, 10.0],
                        help="Sizes relative to Luxury Beauty (574,628 rows).")
    parser.add_argument("--workdir", default="/tmp/spark_job_benchmark",
                        help="Directory for the generated CSVs and outputs.")
    parser.add_argument("--seed", type=int, default=0,
                        help="Seed of the synthetic data.")
    parser.add_argument("--master", default="local[*]",
                        help="Spark master. Default: %(default)s.")
    parser.add_argument("--driver-memory", default="4g",
                        help="spark.driver.memory. Default: %(default)s.")
    parser.add_argument("--num-shards", type=int, default=8,
                        help="Output shards per split. Default: %(default)s.")
    parser.add_argument("--keep-output", action="store_true",
                        help="Keep the job outputs after measuring.")
    args = parser.parse_args()

    os.makedirs(args.workdir, exist_ok=True)
    print(f"machine: {platform.platform()}, {psutil.cpu_count()} logical "
          f"CPUs, {psutil.virtual_memory().total / 2**30:.1f} GiB memory")
    results = []
    for scale in args.scales:
        csv_path = os.path.join(args.workdir,
                                f"ratings_x{scale:g}_seed{args.seed}.csv")
        if not os.path.exists(csv_path):
            started = time.monotonic()
            synthetic_ratings.write_csv(csv_path, scale, args.seed)
            print(f"generated {csv_path} in {time.monotonic() - started:.1f} s")
        output_path = os.path.join(args.workdir, f"examples_x{scale:g}")
        result = run_once(csv_path, output_path, args.master,
                          args.driver_memory, args.num_shards)
        rows = result["summary"]["rows_read"]
        examples = sum(split["examples"]
                       for split in result["summary"]["splits"].values())
        line = {
            "scale": scale,
            "rows": rows,
            "examples": examples,
            "csv_mib": round(os.path.getsize(csv_path) / 2**20, 1),
            "wall_seconds": round(result["wall_seconds"], 1),
            "rows_per_second": round(rows / result["wall_seconds"]),
            "peak_rss_gib": round(result["peak_rss_bytes"] / 2**30, 2),
            "mean_load_average": round(result["mean_load"], 1),
        }
        results.append(line)
        print(json.dumps(line))
        if not args.keep_output:
            shutil.rmtree(output_path, ignore_errors=True)
    if len(results) > 1:
        base = results[0]["wall_seconds"]
        for line in results[1:]:
            print(f"x{line['scale']:g} took {line['wall_seconds'] / base:.2f} "
                  f"times as long as x{results[0]['scale']:g}")


if __name__ == "__main__":
    main()
