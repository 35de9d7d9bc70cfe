#!/usr/bin/env bash
# The one prepared script for a lent GPU machine (see benchmarks/README.md). Run there from the repo root with
# $OUT set, after `tools/gpu_wheels.sh` here, carrying .whl:
#     run(command="bash benchmarks/gpu_session.sh", carry=[".whl"], timeout_s=540)
# Each stage has its own time limit and writes its own file under $OUT, so a stage that fails or runs long
# loses only its own figures:
#   env.txt       GPU, driver, versions
#   pytest.txt    the CUDA / CuPy tests (renderer, tracker numpy vs CuPy, training bf16, inference bf16)
#   render.json   conditioning renderer on CUDA (issue 3 target: <= 0.5 ms/frame at 256 batched on an H100)
#   tracker.json  tracker on synthetic 512 px frames, CPU vs CuPy (issue 4 target: <= 5 ms/frame batched)
#   reenact.json  1000-frame transfer + render + EXR, no training (issue 6 target: <= 30 s on an H100)
#   network.json  generator/training speed, eager then compiled (issue 5 targets: <= 0.10 / <= 0.4 ms/frame)
set -u
OUT=${OUT:-/tmp/dvp_gpu_out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 CUPY_CACHE_DIR=/tmp/cupy_cache
if ls .whl/*.whl >/dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
        .whl/*.whl || { echo "wheel install failed" >"$OUT/env.txt"; exit 1; }
    export PYTHONPATH=/tmp/site:$PWD
else
    export PYTHONPATH=$PWD
fi
{
    nvidia-smi -L
    python3 -c "import sys, numpy, torch; print(sys.version); print('numpy', numpy.__version__, 'torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name(0))"
    python3 -c "import cupy; print('cupy', cupy.__version__)"
    python3 -c "import kornia, OpenImageIO, PyOpenColorIO; print('kornia', kornia.__version__, 'oiio', OpenImageIO.__version__, 'ocio', PyOpenColorIO.__version__)"
} >"$OUT/env.txt" 2>&1
stage() {  # stage NAME SECONDS COMMAND...: run with a limit, say how it ended
    local name=$1 limit=$2
    shift 2
    local t0=$SECONDS
    timeout "$limit" "$@"
    echo "== $name: exit $? after $((SECONDS - t0)) s" | tee -a "$OUT/env.txt"
}
stage pytest 120 python3 -m pytest -q -p no:cacheprovider -o addopts="--import-mode=importlib" \
    tests/render/test_conditioning.py tests/tracking/test_tracker.py tests/network/test_training.py \
    -k "cuda or cupy or strict" >"$OUT/pytest.txt" 2>&1
stage render 45 python3 benchmarks/bench_render.py --no-cpu --sizes 256 512 >"$OUT/render.json"
stage tracker 75 python3 benchmarks/bench_tracker.py --synthetic 128 --size 512 --keyframes 5 >"$OUT/tracker.json"
stage reenact 75 python3 benchmarks/bench_reenact.py --render-only 1000 --device cuda >"$OUT/reenact.json"
stage network 150 python3 benchmarks/bench_network.py --no-cpu --compile --out "$OUT/network.json" >/dev/null
exit 0
