#!/usr/bin/env bash
# Fetch, on this machine, the wheels a lent GPU machine lacks (its image has Python 3.12, torch, CuPy, numpy,
# safetensors, pytest, hypothesis; no kornia, OpenImageIO, OpenColorIO), into .whl/ (git-ignored), for
# benchmarks/gpu_session.sh. About 23 MB. Versions match the ones this project is tested with.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .whl
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 -d .whl \
    kornia==0.9.0 kornia_rs==0.2.0 openimageio==3.2.2.0 opencolorio==2.6.0
ls -l .whl
