"""Named training budgets: the one place the demo's (and the benchmarks') training settings are written down.

``tools/demo.py`` (``make demo``) trains with :data:`DEMO` (``--full``: :data:`FULL`), and
``benchmarks/bench_fidelity.py`` trains each clip under a budget chosen by name from :data:`BUDGETS`, so the
fidelity benchmark's ``demo`` rows measure exactly what ``make demo`` trains. Change the demo's size, width,
batch, iterations or architecture here.

A budget is bounded by iterations and, when ``seconds`` is set, by training wall time too: ``dvp train
--time-limit`` stops after that much training (data preparation not counted), so a time-bounded budget reaches
more iterations on a faster machine. Training has no learning-rate schedule, so a run stopped by time is the
same as one asked for exactly the iterations it reached.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace


@dataclass(frozen=True)
class TrainBudget:
    """Training settings of a named budget.

    Attributes:
        name: the budget's name (``demo``, ``gpu-5min`` ...).
        size: network resolution S (pixels).
        ngf: generator / discriminator base width.
        batch: batch size.
        iters: total iterations (for a time-bounded budget: an upper bound).
        seconds: training wall-time bound (``dvp train --time-limit``), or None for an iteration budget.
        device: what the budget is meant for (``cpu`` or ``cuda``; documentation and the benchmark's default).
        train_args: further ``dvp train`` arguments, e.g. ``("--arch", "paper")``.
    """

    name: str
    size: int
    ngf: int
    batch: int
    iters: int
    seconds: float | None = None
    device: str = "cpu"
    train_args: tuple[str, ...] = field(default_factory=tuple)

    def with_arch(self, arch: str) -> TrainBudget:
        """This budget with ``--arch ARCH`` in :attr:`train_args` (replacing any ``--arch`` there)."""
        rest: list[str] = []
        args = list(self.train_args)
        i = 0
        while i < len(args):
            if args[i] == "--arch":
                i += 2
                continue
            rest.append(args[i])
            i += 1
        return replace(self, train_args=(*rest, "--arch", arch))

    def dvp_train_args(self, iters: int | None = None) -> list[str]:
        """``dvp train`` / ``dvp reenact`` arguments: ``--size --ngf --batch --iters``, ``--time-limit`` (minutes)
        for a time-bounded budget, and :attr:`train_args`."""
        n = self.iters if iters is None else iters
        limit = [] if self.seconds is None else ["--time-limit", f"{self.seconds / 60.0:g}"]
        return [
            "--size", str(self.size), "--ngf", str(self.ngf), "--batch", str(self.batch), "--iters", str(n),
            *limit, *self.train_args,
        ]  # fmt: skip


DEMO = TrainBudget(
    "demo", size=256, ngf=32, batch=2, iters=3000, seconds=600.0, train_args=("--arch", "fast")
)
"""``make demo``: the ``fast`` network at 256 px, width 32, batch 2, for ten minutes of training (at most 3,000
iterations): the whole demo, tracking and rendering included, stays within 15 minutes on two CPU cores however
fast they are; a faster machine reaches more iterations (about 0.65 s an iteration on a two-core AMD EPYC)."""

FULL = TrainBudget(
    "full", size=256, ngf=64, batch=16, iters=6000, device="cuda", train_args=("--arch", "fast")
)
"""``tools/demo.py --full``: the ``fast`` network at 256 px, width 64, batch 16, 6,000 iterations (a GPU;
untested on one so far)."""
FULL_PAPER = TrainBudget(
    "full-paper", size=256, ngf=64, batch=16, iters=31000, device="cuda", train_args=("--arch", "paper")
)
"""``tools/demo.py --full --arch paper``: the paper's recipe, 256 px, width 64, batch 16, 31,000 iterations."""
FULL_BY_ARCH: dict[str, TrainBudget] = {"fast": FULL, "paper": FULL_PAPER}
"""The ``--full`` budget of each architecture."""
GPU_5MIN = TrainBudget(
    "gpu-5min",
    size=256,
    ngf=64,
    batch=16,
    iters=31000,
    seconds=300.0,
    device="cuda",
    train_args=("--arch", "fast"),
)
"""Five minutes of training on one GPU at the paper's size, width and batch (the ``fast`` network)."""
TINY = TrainBudget("tiny", size=64, ngf=8, batch=2, iters=3)
"""Seconds of training: for tests of the benchmark itself (the numbers mean nothing)."""

BUDGETS: dict[str, TrainBudget] = {b.name: b for b in (DEMO, FULL, FULL_PAPER, GPU_5MIN, TINY)}
