"""Static checks of the pipeline image's Dockerfile.

No Docker engine runs in the test environment, so the image is never built
here. These tests parse the Dockerfile and check that it installs exactly the
tested versions: requirements.lock, TensorFlow's GPU wheels for the locked
TensorFlow version, and the project package without dependencies.
"""

import importlib.metadata
import os
import re
from typing import List, Tuple

import pytest

_REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _read(name: str) -> str:
    with open(os.path.join(_REPO_ROOT, name), encoding="utf-8") as file:
        return file.read()


def parse_dockerfile(text: str) -> List[Tuple[str, str]]:
    """Return (INSTRUCTION, arguments) pairs, comments and continuations resolved."""
    instructions = []
    pending = ""
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        full = pending + stripped
        pending = ""
        keyword, _, arguments = full.partition(" ")
        instructions.append((keyword.upper(), " ".join(arguments.split())))
    assert not pending, "Dockerfile ends inside a line continuation"
    return instructions


@pytest.fixture(scope="module")
def instructions():
    return parse_dockerfile(_read("Dockerfile"))


@pytest.fixture(scope="module")
def lock_pins():
    pins = {}
    for line in _read("requirements.lock").splitlines():
        name, separator, version = line.partition("==")
        if separator:
            pins[_normalize(name)] = version.strip()
    return pins


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _index(instructions, keyword, pattern):
    for position, (found, arguments) in enumerate(instructions):
        if found == keyword and re.search(pattern, arguments):
            return position
    raise AssertionError(f"no {keyword} instruction matches {pattern!r}")


def test_parse_dockerfile_continuations():
    parsed = parse_dockerfile("FROM x:1\n# note\nRUN a \\\n  # inner\n  && b\n")

    assert parsed == [("FROM", "x:1"), ("RUN", "a && b")]


def test_dockerfile_base_image_pinned(instructions):
    base = [arguments for keyword, arguments in instructions if keyword == "FROM"]

    assert len(base) == 1
    image, _, tag = base[0].partition(":")
    assert image == "nvidia/cuda"
    assert re.fullmatch(r"\d+\.\d+\.\d+-[a-z]+-ubuntu22\.04", tag), tag


def test_dockerfile_cuda_matches_tensorflow_wheels(instructions):
    # TensorFlow's and-cuda extra pins the CUDA runtime wheel; the base image
    # must carry the same CUDA major.minor for its driver compatibility setup.
    requirements = importlib.metadata.requires("tensorflow") or []
    runtime = [r for r in requirements
               if r.startswith("nvidia-cuda-runtime-cu12") and "and-cuda" in r]
    assert runtime, "tensorflow metadata lists no and-cuda CUDA runtime wheel"
    wheel_version = re.search(r"==\s*(\d+\.\d+)", runtime[0]).group(1)
    base = next(arguments for keyword, arguments in instructions
                if keyword == "FROM")

    assert base.split(":")[1].startswith(wheel_version + ".")


def test_dockerfile_python_matches_project(instructions):
    python_version = _read(".python-version").strip()

    run = instructions[_index(instructions, "RUN", r"apt-get install")][1]
    assert f"python{python_version}" in run
    assert f"python{python_version}-venv" in run
    assert f"python{python_version} -m venv /opt/venv" in run
    env = " ".join(arguments for keyword, arguments in instructions
                   if keyword == "ENV")
    assert f"/opt/venv/lib/python{python_version}/site-packages" in env


def test_dockerfile_installs_lock_before_package(instructions):
    copy_lock = _index(instructions, "COPY", r"^requirements\.lock ")
    install_lock = _index(instructions, "RUN",
                          r"pip install -r /tmp/requirements\.lock")
    install_gpu = _index(instructions, "RUN", r"tensorflow\[and-cuda\]")
    install_package = _index(instructions, "RUN",
                             r"pip install --no-deps /pipeline")

    assert copy_lock < install_lock < install_gpu < install_package


def test_dockerfile_gpu_wheels_follow_lock(instructions, lock_pins):
    run = instructions[_index(instructions, "RUN", r"tensorflow\[and-cuda\]")][1]

    # The TensorFlow version is read from the lock, and the lock constrains
    # every other package, so the GPU step cannot move a pin.
    assert "--constraint /tmp/requirements.lock" in run
    assert "s/^tensorflow==//p" in run
    assert '"tensorflow[and-cuda]==${tf_version}"' in run
    assert lock_pins["tensorflow"] == "2.16.2"
    assert lock_pins["tfx"] == "1.16.0"


def test_dockerfile_hard_codes_no_other_pins(instructions, lock_pins):
    for keyword, arguments in instructions:
        if keyword != "RUN":
            continue
        for name, version in re.findall(r"([A-Za-z0-9_.\-]+)==([0-9][^\s\"']*)",
                                        arguments):
            assert lock_pins.get(_normalize(name)) == version, (name, version)


def test_dockerfile_package_install_checked(instructions):
    run = instructions[_index(instructions, "RUN", r"--no-deps /pipeline")][1]

    assert "pip check" in run


def test_dockerfile_sets_legacy_keras(instructions):
    env = " ".join(arguments for keyword, arguments in instructions
                   if keyword == "ENV")

    assert "TF_USE_LEGACY_KERAS=1" in env


def test_dockerfile_keeps_driver_library_path(instructions):
    env = [arguments for keyword, arguments in instructions
           if keyword == "ENV" and "LD_LIBRARY_PATH=" in arguments]

    assert len(env) == 1
    assert re.search(r"LD_LIBRARY_PATH=\S*:\$\{LD_LIBRARY_PATH\}", env[0])


def test_dockerignore_excludes_local_state():
    entries = {line.strip() for line in _read(".dockerignore").splitlines()
               if line.strip() and not line.startswith("#")}

    for entry in (".git", ".venv", "runs", "**/__pycache__", "*.pem",
                  "*-key.json"):
        assert entry in entries, entry
