# Pipeline image for TFX on Vertex AI Pipelines: every component, including
# the Trainer on a GPU worker, runs in this image.
#
# Why not tensorflow/tensorflow:2.16.2-gpu: TFX 1.16 requires Python >=3.9,<3.11
# (Requires-Python of the tfx 1.16.0 wheel), and the recent tensorflow/tensorflow
# images ship Python 3.11. Ubuntu 22.04 ships Python 3.10 itself, and
# TensorFlow 2.16.2 gets its CUDA 12.3 and cuDNN 8.9 libraries from the
# NVIDIA wheels of its `and-cuda` extra, so the CUDA base image only needs the
# driver hooks. Its CUDA version matches those wheels (nvidia-cuda-runtime-cu12
# 12.3.*). The GPU driver itself comes from the host.
#
# Build from the repository root:
#   docker build -t REGION-docker.pkg.dev/PROJECT/REPOSITORY/pipeline:TAG .
# NOTE: this file has not been built here (no Docker engine was available);
# docs/cloud.md lists what is untested.
FROM nvidia/cuda:12.3.2-base-ubuntu22.04

# TF_USE_LEGACY_KERAS: TFX 1.16 and TFMA 0.47 need Keras 2 (tf-keras).
ENV DEBIAN_FRONTEND=noninteractive \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    TF_USE_LEGACY_KERAS=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH

RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        python3.10 python3.10-venv ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && python3.10 -m venv /opt/venv \
    && pip install --upgrade pip wheel setuptools

# The exact versions tested locally. Installed before the sources are copied,
# so that code changes reuse this layer.
COPY requirements.lock /tmp/requirements.lock
RUN pip install -r /tmp/requirements.lock

# GPU libraries for TensorFlow: the and-cuda extra of the TensorFlow version
# in the lock, constrained by the lock so that no other package moves.
RUN tf_version="$(sed -n 's/^tensorflow==//p' /tmp/requirements.lock)" \
    && test -n "$tf_version" \
    && pip install --constraint /tmp/requirements.lock \
        "tensorflow[and-cuda]==${tf_version}"

# TensorFlow 2.16 does not find the CUDA libraries of the NVIDIA wheels on its
# own (TensorFlow GitHub issue 63362), so their directories go on the library
# path, and ptxas for XLA on PATH. The base image's LD_LIBRARY_PATH stays last
# because it points at the host driver libraries that the GPU runtime mounts.
ENV NVIDIA_WHEELS=/opt/venv/lib/python3.10/site-packages/nvidia
ENV LD_LIBRARY_PATH=${NVIDIA_WHEELS}/cublas/lib:${NVIDIA_WHEELS}/cuda_cupti/lib:${NVIDIA_WHEELS}/cuda_nvrtc/lib:${NVIDIA_WHEELS}/cuda_runtime/lib:${NVIDIA_WHEELS}/cudnn/lib:${NVIDIA_WHEELS}/cufft/lib:${NVIDIA_WHEELS}/curand/lib:${NVIDIA_WHEELS}/cusolver/lib:${NVIDIA_WHEELS}/cusparse/lib:${NVIDIA_WHEELS}/nccl/lib:${NVIDIA_WHEELS}/nvjitlink/lib:${LD_LIBRARY_PATH} \
    PATH=${NVIDIA_WHEELS}/cuda_nvcc/bin:${PATH}
# Fail the build if a wheel lays out its files differently from the list above.
RUN for dir in $(echo "$LD_LIBRARY_PATH" | tr ':' ' ') "$NVIDIA_WHEELS/cuda_nvcc/bin"; do \
        case "$dir" in "$NVIDIA_WHEELS"/*) test -d "$dir" || { echo "missing $dir" >&2; exit 1; } ;; esac; \
    done

# The project itself, without dependencies: they are all pinned above.
WORKDIR /pipeline
COPY . /pipeline
RUN pip install --no-deps /pipeline \
    && pip check

# Dataflow starts a custom worker image through the Beam SDK's boot program,
# so it is copied from the Beam SDK image of the locked Beam version. On
# Vertex AI the compiled pipeline and the Trainer extension set each
# container's command, which replaces this entry point.
COPY --from=apache/beam_python3.10_sdk:2.59.0 /opt/apache/beam /opt/apache/beam
ENTRYPOINT ["/opt/apache/beam/boot"]
