# syntax=docker/dockerfile:1
# OR1 Lab trainer image for NVIDIA GPU nodes: CUDA torch, vLLM and DeepSpeed at the project's pinned versions,
# plus the platform code, so one image serves both ways a GPU host runs training:
#
#   - a Celery worker on the GPU host (local launcher):  docker run --gpus all ... or1lab-trainer worker
#   - the container a Slurm job runs the trainer in (pyxis/enroot, apptainer): or1-train run spec.yaml ...
#
# Build from the repository root, naming the tag you push (it lands in every run's environment record, so a
# run page says exactly which torch/vLLM/DeepSpeed build trained it):
#
#   docker build -f deploy/trainer.Dockerfile -t registry.example.org/or1lab-trainer:0.1.0-cu130 \
#       --build-arg OR1_IMAGE_TAG=registry.example.org/or1lab-trainer:0.1.0-cu130 .
#
# Versions: pyproject.toml pins torch==2.13.0 (PyPI's Linux wheel is the CUDA 13.0 build: it depends on
# cuda-toolkit 13.0.x and nvidia-cudnn-cu13), vllm==0.32.0 (the `gpu` extra; it requires exactly that torch)
# and deepspeed==0.19.8. The same installer as `make install` puts them in place (deploy/install_venv.sh,
# EXTRAS=train,gpu), so nothing here restates a version that could drift from the pins. The base image is
# the CUDA 13.0 *devel* image because DeepSpeed and FlashInfer compile kernels at first use and need nvcc of
# torch's CUDA major version. Hosts need an NVIDIA driver for CUDA 13 (580 or newer) and the NVIDIA
# container toolkit.
ARG CUDA_IMAGE=nvidia/cuda:13.0.0-devel-ubuntu22.04
FROM ${CUDA_IMAGE}

ARG EXTRAS=train,gpu
ARG TORCH_SPEC=torch==2.13.0
ARG OR1_IMAGE_TAG=or1lab-trainer:unversioned

ENV DEBIAN_FRONTEND=noninteractive \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    DJANGO_SETTINGS_MODULE=or1platform.settings \
    OR1_ENV=production \
    OR1_DATA_DIR=/data \
    OR1_RUNS_DIR=/data/runs \
    TORCH_EXTENSIONS_DIR=/data/cache/torch_extensions \
    OR1_IMAGE_TAG=${OR1_IMAGE_TAG}

# Python 3.11 (the version every pin was tested with) from the deadsnakes archive: Ubuntu 22.04 ships 3.10.
# tini reaps the detached trainer wrappers of a worker; libnuma1 is used by NCCL and vLLM for CPU binding.
RUN apt-get update \
    && apt-get install -y --no-install-recommends software-properties-common gpg-agent \
    && add-apt-repository -y ppa:deadsnakes/ppa \
    && apt-get update \
    && apt-get install -y --no-install-recommends \
        python3.11 python3.11-venv python3.11-dev tini libnuma1 git ca-certificates \
    && apt-get purge -y software-properties-common gpg-agent && apt-get autoremove -y \
    && rm -rf /var/lib/apt/lists/* \
    && install -d /data /data/runs /app

WORKDIR /app
COPY pyproject.toml README.md ./
COPY deploy/install_venv.sh deploy/pins_satisfied.py deploy/
COPY or1_train/__init__.py or1_train/
COPY or1platform/__init__.py or1platform/
COPY experiments/__init__.py experiments/
COPY workers/__init__.py workers/
RUN VENV=/opt/venv PYTHON=python3.11 EXTRAS="${EXTRAS}" TORCH_SPEC="${TORCH_SPEC}" bash deploy/install_venv.sh

COPY . .
RUN chmod +x deploy/entrypoint.sh

VOLUME ["/data"]
ENTRYPOINT ["/usr/bin/tini", "--", "/app/deploy/entrypoint.sh"]
CMD ["or1-train", "--help"]
