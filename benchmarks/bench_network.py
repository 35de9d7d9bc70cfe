"""Speed benchmark of the rendering-to-video network (paper Fig. 4 generator). Prints JSON to stdout.

    .venv/bin/python benchmarks/bench_network.py            # CPU (a few minutes on 2 cores) and CUDA if present
    .venv/bin/python benchmarks/bench_network.py --quick    # CPU: 256 only, smaller batches (under a minute)
    .venv/bin/python benchmarks/bench_network.py --out benchmarks/results/network_<gpu>.json

Measures generator inference ms/frame at 256 and 512 for batch 1 and 16 (eval mode, random weights: speed
does not depend on the values) on the CPU in fp32 and on CUDA in fp32 and bf16 (channels_last), a training
iteration (G + D forward/backward, both Adam steps) at batch 16 (``--quick``: batch 2 on the CPU), peak memory,
parameter count and FLOPs per frame.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import platform
import resource
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dvp_engine.network import (  # noqa: E402
    GeneratorConfig,
    PairDataset,
    SpaceTimeGenerator,
    TrainConfig,
    Trainer,
    count_parameters,
    generator_flops,
    init_weights,
)


def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def _peak_mb(dev: torch.device) -> float:
    if dev.type == "cuda":
        return torch.cuda.max_memory_allocated(dev) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # process peak RSS (Linux: KiB)


def bench_inference(
    size: int,
    batch: int,
    dev: torch.device,
    dtype: str,
    warmup: int,
    reps: int,
    compile_mode: str | None = None,
) -> dict[str, Any]:
    cfg = GeneratorConfig(size=size, nw=11)
    g = SpaceTimeGenerator(cfg)
    init_weights(g)
    cl = dev.type == "cuda"
    g = g.to(dev).eval()
    if cl:
        g = g.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    x = torch.rand(batch, cfg.in_channels, size, size, device=dev) * 2 - 1
    if cl:
        x = x.contiguous(memory_format=torch.channels_last)
    t_compile = 0.0
    if compile_mode is not None:
        import torch._inductor.config as inductor_config

        inductor_config.freezing = True  # fold BN into the convolutions, constant weights
        t0 = time.perf_counter()
        g = torch.compile(g, mode=None if compile_mode == "default" else compile_mode)  # type: ignore[assignment]
    ctx = torch.autocast(dev.type, dtype=torch.bfloat16) if dtype == "bf16" else contextlib.nullcontext()
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    with torch.inference_mode(), ctx:
        for _ in range(warmup):
            g(x)
        _sync(dev)
        if compile_mode is not None:
            t_compile = time.perf_counter() - t0
        t0 = time.perf_counter()
        for _ in range(reps):
            g(x)
        _sync(dev)
        dt = time.perf_counter() - t0
    out = {
        "size": size,
        "batch": batch,
        "device": dev.type,
        "dtype": dtype,
        "channels_last": cl,
        "compile": compile_mode,
        "reps": reps,
        "ms_per_frame": 1000.0 * dt / (reps * batch),
        "ms_per_batch": 1000.0 * dt / reps,
        "peak_mem_mb": round(_peak_mb(dev), 1),
    }
    if compile_mode is not None:
        out["compile_and_warmup_s"] = round(t_compile, 1)
    return out


def bench_training(
    size: int, batch: int, dev: torch.device, warmup: int, reps: int, tmp: Path
) -> dict[str, Any]:
    n = max(batch, 2)
    vol = torch.rand(n, 99, size, size) * 2 - 1
    frame = torch.rand(n, 3, size, size) * 2 - 1
    cfg = TrainConfig(
        size=size,
        nw=11,
        batch=batch,
        iters=warmup + reps,
        progress=False,
        device=str(dev),
        log_every=10**9,
        preview_every=0,
        checkpoint_every=0,
    )
    t = Trainer(tmp, PairDataset.from_arrays(vol, frame), None, cfg, distributed=False)
    xs = [(t._to_device(vol[:batch]), t._to_device(frame[:batch]))]
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    for _ in range(warmup):
        t.step(*xs[0])
    _sync(dev)
    t0 = time.perf_counter()
    for _ in range(reps):
        t.step(*xs[0])
    _sync(dev)
    dt = time.perf_counter() - t0
    return {
        "size": size,
        "batch": batch,
        "device": dev.type,
        "dtype": "bf16-autocast" if t.amp else "fp32",
        "fused_adam": dev.type == "cuda",
        "reps": reps,
        "ms_per_iter": 1000.0 * dt / reps,
        "peak_mem_mb": round(_peak_mb(dev), 1),
    }


def bench_training_loop(size: int, batch: int, dev: torch.device, iters: int, tmp: Path) -> dict[str, Any]:
    """``Trainer.train`` on a 200-frame uint8 sequence (``from_sequence``, as ``dvp train``): data path included."""
    import numpy as np

    rng = np.random.default_rng(0)
    cond = rng.integers(0, 256, (200, 9, size, size), dtype=np.uint8)
    frames = rng.integers(0, 256, (200, 3, size, size), dtype=np.uint8)
    cfg = TrainConfig(
        size=size, nw=11, batch=batch, iters=iters, progress=False, device=str(dev),
        log_every=iters // 2, preview_every=0, checkpoint_every=0,
    )  # fmt: skip
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    t = Trainer(tmp, PairDataset.from_sequence(cond, frames, nw=11), None, cfg, distributed=False)
    t.train()
    log = [json.loads(x) for x in (tmp / "log.jsonl").read_text().splitlines() if "ms_per_iter" in x]
    ms = log[-1]["ms_per_iter"]  # the second half: warm-up (upload, cuDNN autotuning) excluded
    return {
        "size": size,
        "batch": batch,
        "device": dev.type,
        "dtype": "bf16-autocast" if t.amp else "fp32",
        "data": "from_sequence, gathered on the device" if cfg.gather_batches else "DataLoader",
        "ms_per_iter_with_data": round(ms, 2),
        "minutes_for_31000_iterations": round(ms * 31000 / 60000, 1),
        "peak_mem_mb": round(_peak_mb(dev), 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--quick", action="store_true", help="CPU: skip 512, batch 4 instead of 16, train at batch 2"
    )
    ap.add_argument("--no-cpu", action="store_true", help="skip the CPU runs (GPU machines)")
    ap.add_argument(
        "--compile",
        action="store_true",
        help="CUDA: also torch.compile at 256 bf16 (BN frozen): batch 64 (inductor) and batch 1 (CUDA graphs)",
    )
    ap.add_argument("--out", type=Path, help="also write the JSON here")
    args = ap.parse_args()

    import tempfile

    res: dict[str, Any] = {
        "benchmark": "network",
        "torch": torch.__version__,
        "cpu": platform.processor() or platform.machine(),
        "cpu_threads": torch.get_num_threads(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "model": {},
        "inference": [],
        "training": [],
        "notes": [],
    }
    for size in (256, 512):
        cfg = GeneratorConfig(size=size, nw=11)
        res["model"][str(size)] = {
            "params": count_parameters(SpaceTimeGenerator(cfg)),
            "gflop_per_frame": round(generator_flops(cfg) / 1e9, 3),
            "levels": cfg.levels,
        }

    cpu = torch.device("cpu")
    if not args.no_cpu:
        cpu_b16 = 4 if args.quick else 16
        plan = [(256, 1, 2, 3), (256, cpu_b16, 1, 1)]
        if not args.quick:
            plan += [(512, 1, 2, 2), (512, 16, 0, 1)]
        for size, b, w, r in plan:
            res["inference"].append(bench_inference(size, b, cpu, "fp32", w, r))
            print(json.dumps(res["inference"][-1]), file=sys.stderr)
        cpu_train_b = 2 if args.quick else 16
        if args.quick:
            res["notes"].append(
                "--quick: CPU inference batch 4 instead of 16, CPU training at batch 2, no 512"
            )
        res["notes"].append("CPU peak_mem_mb is the process's peak RSS so far (monotone over the run)")
        with tempfile.TemporaryDirectory() as d:
            res["training"].append(
                bench_training(256, cpu_train_b, cpu, 1, 1 if cpu_train_b > 4 else 2, Path(d))
            )
        print(json.dumps(res["training"][-1]), file=sys.stderr)

    if torch.cuda.is_available():
        dev = torch.device("cuda")
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        res["notes"].append(
            "CUDA: cudnn.benchmark on, TF32 allowed for fp32, channels_last, plain eager (no compile)"
        )
        for size in (256, 512):
            for b in (1, 16):
                for dt in ("fp32", "bf16"):
                    res["inference"].append(bench_inference(size, b, dev, dt, 10, 50 if b == 1 else 20))
                    print(json.dumps(res["inference"][-1]), file=sys.stderr)
        res["inference"].append(bench_inference(256, 64, dev, "bf16", 5, 20))
        print(json.dumps(res["inference"][-1]), file=sys.stderr)
        with tempfile.TemporaryDirectory() as d:
            res["training"].append(bench_training(256, 16, dev, 5, 20, Path(d)))
        print(json.dumps(res["training"][-1]), file=sys.stderr)
        with tempfile.TemporaryDirectory() as d:
            res["training"].append(bench_training_loop(256, 16, dev, 60, Path(d)))
        print(json.dumps(res["training"][-1]), file=sys.stderr)
        if args.out:
            args.out.write_text(json.dumps(res, indent=1))
        if args.compile:
            for b, mode in ((64, "default"), (1, "reduce-overhead")):
                try:
                    res["inference"].append(bench_inference(256, b, dev, "bf16", 5, 50, compile_mode=mode))
                except Exception as exc:  # a compiler failure must not lose the eager figures
                    res["notes"].append(f"torch.compile mode {mode} at batch {b} failed: {exc!r:.300}")
                print(json.dumps(res["inference"][-1]), file=sys.stderr)
                if args.out:
                    args.out.write_text(json.dumps(res, indent=1))

    text = json.dumps(res, indent=1)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
