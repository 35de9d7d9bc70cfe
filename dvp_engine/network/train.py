"""Adversarial training of the rendering-to-video network (paper section 6, eq. 5-7).

``T* = argmin_T max_D E_cGAN(T, D) + lambda * E_l1(T)`` with lambda = 100, BCE-with-logits for the cGAN terms,
Adam (lr 2e-4, beta1 0.5), batch 16, paper/pix2pix initialisation N(0, 0.02). As in pix2pix the discriminator
loss is halved (``d_loss_factor``) to slow D relative to T.

Determinism: the weights are initialised from ``seed``; the order of training samples is a pure function of
(seed, epoch), so the batch of iteration i never depends on the history; dropout draws from the global torch
RNG whose state is saved in every checkpoint. On the CPU, ``N`` iterations straight and ``N/2 + resume + N/2``
give bit-identical weights.

On CUDA: bf16 autocast, channels_last, fused Adam, optional ``torch.compile``; DDP when launched by torchrun
(``WORLD_SIZE`` > 1 in the environment): each rank trains on its own slice of every global batch, rank 0 logs,
previews and writes checkpoints.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Sampler

from dvp_engine.core.errors import DvpError

from . import checkpoint as ck
from .arch import AnyGeneratorConfig, build_generator, check_arch, generator_config
from .augment import aligned_shift, shift_offsets
from .data import CHANNELS_PER_FRAME, PairDataset, current_colour
from .discriminator import DiscriminatorConfig, PatchDiscriminator, init_weights
from .evaluate import to_unit, write_contact_sheet
from .fast_generator import FastGenerator
from .generator import SpaceTimeGenerator
from .infer import resolve_device
from .losses import feature_matching_loss, gan_loss, l1_loss, region_weights

__all__ = ["TrainConfig", "Trainer"]

log = logging.getLogger("dvp.network")


@dataclass
class TrainConfig:
    """Training settings (paper defaults). Stored in every checkpoint's ``state.json``.

    Attributes:
        arch: the named architecture (:mod:`.arch`): ``paper`` (this class's default, the paper's recipe) or
            ``fast`` (what ``dvp train`` uses by default). The settings marked *fast* apply to it only.
        size, nw, ngf: generator architecture (see :class:`GeneratorConfig` / :class:`FastGeneratorConfig`).
        ndf: discriminator base width.
        batch: per-process batch size (>= 2: BN at the 1x1 bottleneck); the paper uses 16.
        iters: total iterations to train to (31,000 in the paper).
        lr, beta1, beta2: Adam settings.
        lambda_l1: weight of the L1 reproduction loss (eq. 5).
        d_loss_factor: factor on the discriminator's loss (0.5 as pix2pix).
        seed: seeds initialisation, data order and dropout.
        log_every: iterations between log lines (``log.jsonl``) and progress-bar updates.
        preview_every: iterations between held-out previews (PNG) and held-out L1 (0: only at the end).
        checkpoint_every: iterations between checkpoints (0: only at the end).
        keep_checkpoints: number of checkpoints kept (0: all).
        n_preview: held-out frames shown in previews.
        device: "auto" (CUDA if present), "cpu", "cuda", "cuda:1", ...
        bf16: bf16 autocast on CUDA; on the CPU too for ``fast`` when the CPU has bf16 arithmetic
            (AVX512-BF16 / AMX; ``cpu_bf16``).
        cpu_bf16: *fast*: allow bf16 autocast on such CPUs.
        lambda_fm: *fast*: weight of the discriminator feature-matching loss (pix2pixHD: 10).
        face_weight, eye_weight: *fast*: extra L1 weight on the rendered face and on the eye openings.
        shift: *fast*: largest aligned shift augmentation, as a fraction of the size (0: none).
        texture_lr: *fast*: learning-rate factor of the neural texture.
        channels_last: channels_last memory format on CUDA (ignored on the CPU).
        fused_adam: fused Adam kernel on CUDA.
        compile: ``torch.compile`` G and D.
        num_workers: DataLoader worker processes (0: load in the main process).
        gather_batches: build each batch at once on the training device from the per-frame sequence
            (:meth:`PairDataset.gather`, datasets made by ``from_sequence``) instead of item by item on the CPU
            through a DataLoader; the same batches, the same values.
        progress: show a tqdm progress bar.
    """

    arch: str = "paper"
    size: int = 256
    nw: int = 11
    ngf: int = 64
    ndf: int = 64
    batch: int = 16
    iters: int = 31000
    lr: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    lambda_l1: float = 100.0
    d_loss_factor: float = 0.5
    seed: int = 0
    log_every: int = 50
    preview_every: int = 1000
    checkpoint_every: int = 1000
    keep_checkpoints: int = 3
    n_preview: int = 4
    device: str = "auto"
    bf16: bool = True
    channels_last: bool = True
    fused_adam: bool = True
    compile: bool = False
    num_workers: int = 0
    gather_batches: bool = True
    progress: bool = True
    cpu_bf16: bool = True
    lambda_fm: float = 10.0
    face_weight: float = 3.0
    eye_weight: float = 6.0
    shift: float = 0.0625
    texture_lr: float = 10.0
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        try:
            check_arch(self.arch)
        except ValueError as exc:
            raise DvpError(str(exc)) from None

    def generator_config(self) -> AnyGeneratorConfig:
        return generator_config(self.arch, self.size, self.nw, self.ngf)

    def discriminator_config(self) -> DiscriminatorConfig:
        """The paper's D sees the whole volume and the image; the ``fast`` D the current frame's 9
        conditioning channels and the image (its first convolution was 8x the cost of the rest of D)."""
        cond = CHANNELS_PER_FRAME if self.arch == "fast" else self.generator_config().in_channels
        return DiscriminatorConfig(in_channels=cond + 3, ndf=self.ndf)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        """Settings from a checkpoint's ``state.json``; one written before architectures had names is ``paper``."""
        names = {f.name for f in fields(cls)}
        return cls(**{"arch": "paper", **{k: v for k, v in d.items() if k in names}})


def cpu_has_bf16() -> bool:
    """Whether this CPU has native bf16 arithmetic (oneDNN's check: AVX512-BF16 or AMX)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


class _StreamBatchSampler(Sampler[list[int]]):
    """Batches of iterations ``start..stop-1`` from an endless stream of per-epoch permutations.

    Stream position p is sample ``perm(epoch = p // n)[p % n]`` with ``perm(e)`` a permutation drawn from a
    generator seeded with ``(seed, e)``; iteration i of rank r takes positions
    ``[(i * world + r) * batch, ... + batch)``. So every batch is a pure function of (seed, i, rank).
    """

    def __init__(
        self, n: int, batch: int, seed: int, start: int, stop: int, rank: int = 0, world: int = 1
    ) -> None:
        self.n, self.batch, self.seed = n, batch, seed
        self.start, self.stop, self.rank, self.world = start, stop, rank, world
        self._perm: tuple[int, torch.Tensor] | None = None

    def _at(self, p: int) -> int:
        e = p // self.n
        if self._perm is None or self._perm[0] != e:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + e)
            self._perm = (e, torch.randperm(self.n, generator=g))
        return int(self._perm[1][p % self.n])

    def batch_indices(self, it: int) -> list[int]:
        p0 = (it * self.world + self.rank) * self.batch
        return [self._at(p) for p in range(p0, p0 + self.batch)]

    def __iter__(self) -> Iterator[list[int]]:
        for it in range(self.start, self.stop):
            yield self.batch_indices(it)

    def __len__(self) -> int:
        return max(0, self.stop - self.start)


def _distributed_env() -> tuple[int, int, int]:
    """(rank, world size, local rank) from torchrun's environment; (0, 1, 0) when not launched by it."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1 or "RANK" not in os.environ:
        return 0, 1, 0
    return int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0"))


class Trainer:
    """Trains a :class:`SpaceTimeGenerator` and a :class:`PatchDiscriminator` on (volume, frame) pairs.

    Args:
        out_dir: model folder (checkpoints, ``log.jsonl``, ``previews/``); created if needed.
        train_set: training pairs (volumes ``(9*Nw, S, S)``, frames ``(3, S, S)``, both in [-1, 1]).
        held_out: held-out pairs for previews and held-out L1 (never trained on); may be None.
        config: settings; ``size``/``nw`` must match the data.
        background: ``fast`` only: the plate's background estimate ``(3, S, S)`` in [-1, 1]
            (:func:`~.inputs.estimate_background`); None: flat grey (or what a resumed checkpoint holds).
        distributed: None (default): DDP when launched by torchrun with ``WORLD_SIZE`` > 1; True: always wrap in
            DDP using ``RANK``/``WORLD_SIZE``/``MASTER_ADDR``/``MASTER_PORT`` from the environment (also for a
            single process); False: never.

    Use :meth:`train` to run to ``config.iters``; :meth:`resume` to continue from a model folder.
    """

    def __init__(
        self,
        out_dir: str | Path,
        train_set: PairDataset,
        held_out: PairDataset | None = None,
        config: TrainConfig | None = None,
        distributed: bool | None = None,
        background: torch.Tensor | None = None,
    ) -> None:
        self.config = cfg = config if config is not None else TrainConfig()
        if cfg.batch < 2:
            raise DvpError(f"training batch must be >= 2 (batch norm at the 1x1 bottleneck), got {cfg.batch}")
        if len(train_set) == 0:
            raise DvpError("the training set is empty")
        self.out_dir = Path(out_dir)
        self.train_set, self.held_out = train_set, held_out
        self.g_config, self.d_config = cfg.generator_config(), cfg.discriminator_config()
        vol, frame = train_set[0]
        want_v = (self.g_config.in_channels, cfg.size, cfg.size)
        if tuple(vol.shape) != want_v or tuple(frame.shape) != (3, cfg.size, cfg.size):
            raise DvpError(
                f"training pairs are {tuple(vol.shape)} + {tuple(frame.shape)}, the network needs "
                f"{want_v} + (3, {cfg.size}, {cfg.size}) (size {cfg.size}, nw {cfg.nw})"
            )

        if distributed is None:
            self.rank, self.world, local_rank = _distributed_env()
            use_ddp = self.world > 1
        elif distributed:
            self.rank = int(os.environ.get("RANK", "0"))
            self.world = int(os.environ.get("WORLD_SIZE", "1"))
            local_rank = int(os.environ.get("LOCAL_RANK", "0"))
            use_ddp = True
        else:
            self.rank, self.world, local_rank, use_ddp = 0, 1, 0, False
        self.device = resolve_device(cfg.device)
        if use_ddp and self.device.type == "cuda":
            self.device = torch.device("cuda", local_rank)
            torch.cuda.set_device(self.device)
        cuda = self.device.type == "cuda"
        self.fast = cfg.arch == "fast"
        cpu_amp = self.fast and self.device.type == "cpu" and cfg.cpu_bf16 and cpu_has_bf16()
        self.amp = cfg.bf16 and (cuda or cpu_amp)
        self.memory_format = torch.channels_last if (cuda and cfg.channels_last) else torch.contiguous_format

        # The trainer's own random stream (dropout draws from the global RNGs): seeded here, swapped in while
        # train() runs and saved in checkpoints, so a run does not depend on what else ran in the process.
        self._rng: dict[str, Any] = ck.get_rng_state()
        self._training = False
        with self._own_rng():
            torch.manual_seed(cfg.seed)
        gen = torch.Generator().manual_seed(cfg.seed)
        self.G: SpaceTimeGenerator | FastGenerator = build_generator(self.g_config)
        self.D = PatchDiscriminator(self.d_config)
        if isinstance(self.G, FastGenerator):
            self.G.reset_parameters(gen)
            if background is not None:
                self.G.set_background(background)
        else:
            init_weights(self.G, generator=gen)
        init_weights(self.D, generator=gen)
        for m in (self.G, self.D):
            m.to(self.device).to(memory_format=self.memory_format)  # type: ignore[call-overload,unused-ignore]
            m.train()
        fused = bool(cuda and cfg.fused_adam)
        betas = (cfg.beta1, cfg.beta2)
        g_params: list[dict[str, Any]] = [
            {"params": [p for n, p in self.G.named_parameters() if not n.startswith("texture.")]}
        ]
        texture = [p for n, p in self.G.named_parameters() if n.startswith("texture.")]
        if texture:
            g_params.append({"params": texture, "lr": cfg.lr * cfg.texture_lr})
        self.opt_g = torch.optim.Adam(g_params, lr=cfg.lr, betas=betas, fused=fused or None)
        self.opt_d = torch.optim.Adam(self.D.parameters(), lr=cfg.lr, betas=betas, fused=fused or None)
        self.iteration = 0
        self.stopped_by_time = False  # whether the last train() call stopped at its time limit

        self.ddp = False
        if use_ddp:
            import torch.distributed as dist
            from torch.nn.parallel import DistributedDataParallel as DDP

            if not dist.is_initialized():
                dist.init_process_group("nccl" if cuda else "gloo")
            ids = [self.device.index] if cuda else None
            self._G_run: nn.Module = DDP(self.G, device_ids=ids)
            self._D_run: nn.Module = DDP(self.D, device_ids=ids)
            self.ddp = True
        else:
            self._G_run, self._D_run = self.G, self.D
        self._D_plain: nn.Module = self.D
        if cfg.compile:
            self._G_run = torch.compile(self._G_run)  # type: ignore[assignment]
            self._D_run = torch.compile(self._D_run)  # type: ignore[assignment]
            self._D_plain = torch.compile(self.D)  # type: ignore[assignment]
        self.last_losses: dict[str, float] = {}

    # ------------------------------------------------------------------------------------------ resume

    @classmethod
    def resume(
        cls,
        out_dir: str | Path,
        train_set: PairDataset,
        held_out: PairDataset | None = None,
        checkpoint: str | Path | None = None,
        distributed: bool | None = None,
        **overrides: Any,
    ) -> Trainer:
        """Rebuild a trainer from ``out_dir``'s latest checkpoint (or ``checkpoint``) and continue exactly.

        ``overrides`` change settings that do not affect the architecture (``iters``, ``log_every``,
        ``device``, ...). Architecture settings must match the checkpoint.
        Raises:
            CheckpointError / ArchitectureMismatchError: missing, corrupt or incompatible checkpoint.
        """
        ck_dir = Path(checkpoint) if checkpoint is not None else ck.latest_checkpoint(out_dir)
        state = ck.read_state(ck_dir)
        ck.verify_files(ck_dir, state)
        arch_keys = {"arch", "size", "nw", "ngf", "ndf"}
        saved = {"arch": "paper", **state["config"]}
        if "arch" in overrides and overrides["arch"] != saved["arch"]:
            raise ck.ArchitectureMismatchError(
                f"the checkpoint is of the {saved['arch']!r} architecture, {overrides['arch']!r} was asked for: "
                "train the other architecture in a new model folder",
                path=ck_dir,
            )
        bad = sorted(k for k in overrides if k in arch_keys and overrides[k] != saved.get(k))
        if bad:
            raise ck.ArchitectureMismatchError(
                "cannot change the architecture on resume: "
                + "; ".join(
                    f"{k} is {saved.get(k)!r} in the checkpoint, {overrides[k]!r} asked" for k in bad
                ),
                path=ck_dir,
            )
        cfg = replace(TrainConfig.from_dict(state["config"]), **overrides)
        t = cls(out_dir, train_set, held_out, cfg, distributed=distributed)
        t.load_checkpoint(ck_dir, state)
        return t

    def load_checkpoint(self, ck_dir: str | Path, state: dict[str, Any] | None = None) -> None:
        """Load G, D, both optimizers, the iteration and the RNG states from a checkpoint folder."""
        d = Path(ck_dir)
        state = ck.read_state(d) if state is None else state
        for name, sig in (
            ("generator", self.g_config.signature()),
            ("discriminator", self.d_config.signature()),
        ):
            ck.compare_signature(state.get(name, {}), sig, d, what=f"{name} architecture")
        ck.load_module_state(self.G, d / ck.GENERATOR_FILE)
        ck.load_module_state(self.D, d / ck.DISCRIMINATOR_FILE)
        ck.load_optimizer_state(self.opt_g, d / ck.OPTIM_G_FILE)
        ck.load_optimizer_state(self.opt_d, d / ck.OPTIM_D_FILE)
        self.iteration = int(state["iteration"])
        if state.get("train_size", len(self.train_set)) != len(self.train_set):
            log.warning(
                "%s: resuming with %d training pairs, the checkpoint was trained on %d: the sample order changes",
                d,
                len(self.train_set),
                state["train_size"],
            )
        rng = state.get("rng_per_rank", {}).get(str(self.rank), state.get("rng"))
        if rng is not None:
            self._rng = rng
        self._truncate_log()

    def save_checkpoint(self) -> Path | None:
        """Write a checkpoint of the current iteration (rank 0 only); returns its folder."""
        if self.rank != 0:
            return None
        state = {
            "config": asdict(self.config),
            "generator": self.g_config.signature(),
            "discriminator": self.d_config.signature(),
            "rng": ck.get_rng_state() if self._training else self._rng,
            "world_size": self.world,
            "train_size": len(self.train_set),
            "torch_version": torch.__version__,
        }
        return ck.write_checkpoint(
            self.out_dir,
            self.iteration,
            {
                "generator": (self.G, self.g_config.signature()),
                "discriminator": (self.D, self.d_config.signature()),
            },
            {"optimizer_g": self.opt_g, "optimizer_d": self.opt_d},
            state,
            keep=self.config.keep_checkpoints,
        )

    # ----------------------------------------------------------------------------------------- logging

    @property
    def log_path(self) -> Path:
        return self.out_dir / "log.jsonl"

    def _truncate_log(self) -> None:
        """Drop log lines past the resumed iteration (written by a run interrupted after its last checkpoint)."""
        if self.rank != 0 or not self.log_path.is_file():
            return
        keep = []
        for line in self.log_path.read_text(encoding="utf-8").splitlines():
            with contextlib.suppress(ValueError):
                if json.loads(line).get("iter", 0) <= self.iteration:
                    keep.append(line)
        from dvp_engine.core.atomic import write_text_atomic

        write_text_atomic(self.log_path, "".join(k + "\n" for k in keep))

    def _log(self, record: dict[str, Any]) -> None:
        if self.rank != 0:
            return
        with open(self.log_path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record, sort_keys=True) + "\n")

    # --------------------------------------------------------------------------------------- training

    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self.amp:
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def _to_device(self, t: torch.Tensor) -> torch.Tensor:
        return t.to(self.device, non_blocking=True).contiguous(memory_format=self.memory_format)

    def step(self, volume: torch.Tensor, real: torch.Tensor) -> dict[str, torch.Tensor]:
        """One D update then one G update on a batch (already on the device); returns detached losses."""
        if self.fast:
            return self._step_fast(volume, real)
        cfg = self.config
        with self._autocast():
            fake = self._G_run(volume)
        # Discriminator: real -> 1, fake -> 0 (the fake is detached: D's loss does not reach G).
        for p in self.D.parameters():
            p.requires_grad_(True)
        self.opt_d.zero_grad(set_to_none=True)
        no_sync = self._D_run.no_sync() if self.ddp else contextlib.nullcontext()  # type: ignore[operator]
        with no_sync:
            with self._autocast():
                pred_real = self._D_run(volume, real)
                loss_real = F.binary_cross_entropy_with_logits(
                    pred_real.float(), torch.ones_like(pred_real.float())
                )
            torch.autograd.backward(loss_real * cfg.d_loss_factor)
        with self._autocast():
            pred_fake = self._D_run(volume, fake.detach())
            loss_fake = F.binary_cross_entropy_with_logits(
                pred_fake.float(), torch.zeros_like(pred_fake.float())
            )
        torch.autograd.backward(loss_fake * cfg.d_loss_factor)
        self.opt_d.step()
        # Generator: fool D (fake -> 1) + lambda * L1; D is frozen (plain module, no DDP hooks).
        for p in self.D.parameters():
            p.requires_grad_(False)
        self.opt_g.zero_grad(set_to_none=True)
        with self._autocast():
            pred = self._D_plain(volume, fake)
        loss_gan = F.binary_cross_entropy_with_logits(pred.float(), torch.ones_like(pred.float()))
        loss_l1 = (fake.float() - real.float()).abs().mean()
        loss_g = loss_gan + cfg.lambda_l1 * loss_l1
        torch.autograd.backward(loss_g)
        self.opt_g.step()
        for p in self.D.parameters():
            p.requires_grad_(True)
        return {
            "loss_g": loss_g.detach(),
            "loss_g_gan": loss_gan.detach(),
            "loss_l1": loss_l1.detach(),
            "loss_d_real": loss_real.detach(),
            "loss_d_fake": loss_fake.detach(),
        }

    def _step_fast(self, volume: torch.Tensor, real: torch.Tensor) -> dict[str, torch.Tensor]:
        """The ``fast`` step: aligned shifts of (volume, frame, background); D as in the paper; G with the
        region-weighted L1 and discriminator feature matching (:mod:`.losses`)."""
        cfg = self.config
        assert isinstance(self.G, FastGenerator)
        bg = self.G.background.expand(volume.shape[0], -1, -1, -1)
        max_shift = int(round(cfg.shift * cfg.size))
        if max_shift > 0:
            offsets = shift_offsets(volume.shape[0], max_shift, cfg.seed, self.iteration)
            volume, real, bg = aligned_shift([volume, real, bg], offsets)
        current = volume[:, CHANNELS_PER_FRAME * (cfg.nw - 1) :]
        weights = region_weights(current, cfg.face_weight, cfg.eye_weight)
        with self._autocast():
            fake = self._G_run(volume, bg)
        for p in self.D.parameters():
            p.requires_grad_(True)
        self.opt_d.zero_grad(set_to_none=True)
        no_sync = self._D_run.no_sync() if self.ddp else contextlib.nullcontext()  # type: ignore[operator]
        with no_sync:
            with self._autocast():
                if self.ddp:  # D's update must pass DDP's hooks; the features for G come from a plain pass
                    pred_real = self._D_run(current, real)
                    with torch.no_grad():
                        feats_real = self.D.features(current, real)
                else:
                    feats_real = self.D.features(current, real)
                    pred_real = feats_real[-1]
                loss_real = gan_loss(pred_real, True)
            torch.autograd.backward(loss_real * cfg.d_loss_factor)
        with self._autocast():
            loss_fake = gan_loss(self._D_run(current, fake.detach()), False)
        torch.autograd.backward(loss_fake * cfg.d_loss_factor)
        self.opt_d.step()
        for p in self.D.parameters():
            p.requires_grad_(False)
        self.opt_g.zero_grad(set_to_none=True)
        with self._autocast():
            feats_fake = self.D.features(current, fake)
        loss_gan = gan_loss(feats_fake[-1], True)
        loss_l1w = l1_loss(fake, real, weights)
        loss_fm = feature_matching_loss([f.detach() for f in feats_real[:-1]], feats_fake[:-1])
        loss_g = loss_gan + cfg.lambda_l1 * loss_l1w + cfg.lambda_fm * loss_fm
        torch.autograd.backward(loss_g)
        self.opt_g.step()
        for p in self.D.parameters():
            p.requires_grad_(True)
        return {
            "loss_g": loss_g.detach(),
            "loss_g_gan": loss_gan.detach(),
            "loss_l1": l1_loss(fake.detach(), real),
            "loss_l1_weighted": loss_l1w.detach(),
            "loss_fm": loss_fm.detach(),
            "loss_d_real": loss_real.detach(),
            "loss_d_fake": loss_fake.detach(),
        }

    def _sampler(self, stop: int) -> _StreamBatchSampler:
        return _StreamBatchSampler(
            len(self.train_set),
            self.config.batch,
            self.config.seed,
            self.iteration,
            stop,
            self.rank,
            self.world,
        )

    def _batches(self, stop: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The training batches up to iteration ``stop``: gathered on the device when the dataset can."""
        if self.config.gather_batches and self.train_set.gathers:
            for ks in self._sampler(stop):
                yield self.train_set.gather(ks, self.device)
        else:
            yield from self._loader(stop)

    def _loader(self, stop: int) -> DataLoader[Any]:
        sampler = self._sampler(stop)
        return DataLoader(
            self.train_set,
            batch_sampler=sampler,
            num_workers=self.config.num_workers,
            pin_memory=self.device.type == "cuda",
            persistent_workers=False,
            # The loader draws its worker base seed from this generator, not from the global RNG, so creating
            # a loader (once per train() call) leaves the dropout random stream untouched.
            generator=torch.Generator().manual_seed(self.config.seed + self.iteration),
        )

    def train(
        self,
        iters: int | None = None,
        on_log: Callable[[int, dict[str, Any]], None] | None = None,
        time_limit: float | None = None,
    ) -> dict[str, float]:
        """Train until ``iters`` (default ``config.iters``) total iterations; checkpoint at the end.

        ``on_log(iteration, record)`` is called with every log record (losses, ms/iteration), e.g. to print
        machine-readable progress lines. ``time_limit``: seconds of training (wall time of this call's
        iterations) after which it stops early, after the iteration that reaches it, with the same preview and
        checkpoint as at ``iters``; :attr:`stopped_by_time` says whether it did. The samples of each iteration
        do not depend on where a run stopped, so resuming later continues the same training.

        Returns the last logged losses. Raises :class:`DvpError` on GPU out-of-memory (with the batch size).
        """
        if time_limit is not None and not time_limit > 0:
            raise DvpError(f"the training time limit must be a positive number of seconds, got {time_limit}")
        with self._own_rng():
            return self._train(iters, on_log, time_limit)

    def _out_of_time(self, t_start: float, time_limit: float) -> bool:
        """Whether ``time_limit`` seconds have passed since ``t_start``; under DDP rank 0's clock decides for
        every rank, so all stop at the same iteration."""
        out = time.perf_counter() - t_start >= time_limit
        if not self.ddp:
            return out
        import torch.distributed as dist

        flag = torch.tensor([1.0 if out else 0.0], device=self.device)
        dist.broadcast(flag, src=0)
        return bool(flag.item() > 0)

    @contextlib.contextmanager
    def _own_rng(self) -> Iterator[None]:
        """Swap the trainer's random stream in for the block, keep where it got to, give the caller's back."""
        outer = ck.get_rng_state()
        ck.set_rng_state(self._rng)
        self._training = True
        try:
            yield
        finally:
            self._training = False
            self._rng = ck.get_rng_state()
            ck.set_rng_state(outer)

    def _train(
        self,
        iters: int | None,
        on_log: Callable[[int, dict[str, Any]], None] | None,
        time_limit: float | None = None,
    ) -> dict[str, float]:
        from tqdm import tqdm

        cfg = self.config
        asked = cfg.iters if iters is None else iters
        stop = asked  # moved up to the current iteration when the time limit ends the run
        self.stopped_by_time = False
        t_start = time.perf_counter()
        if self.rank == 0:
            self.out_dir.mkdir(parents=True, exist_ok=True)
        bar = tqdm(
            total=stop,
            initial=self.iteration,
            disable=not cfg.progress or self.rank != 0,
            desc="train",
            unit="it",
            dynamic_ncols=True,
        )
        sums: dict[str, torch.Tensor] = {}
        zero = torch.zeros((), device=self.device)
        count = 0
        t0 = time.perf_counter()
        try:
            for vol, real in self._batches(stop):
                try:
                    losses = self.step(self._to_device(vol), self._to_device(real))
                except torch.OutOfMemoryError as exc:
                    raise DvpError(
                        f"out of GPU memory at batch {cfg.batch}, size {cfg.size}: try a smaller --batch ({exc})"
                    ) from exc
                self.iteration += 1
                count += 1
                for k, v in losses.items():
                    sums[k] = sums.get(k, zero) + v
                bar.update(1)
                if (
                    time_limit is not None
                    and self.iteration < stop
                    and self._out_of_time(t_start, time_limit)
                ):
                    self.stopped_by_time = True
                    stop = self.iteration  # the last iteration: logged, previewed and checkpointed as one
                if self.iteration % max(1, cfg.log_every) == 0 or self.iteration == stop:
                    dt = time.perf_counter() - t0
                    rec: dict[str, Any] = {k: float(v) / count for k, v in sums.items()}
                    self.last_losses = dict(rec)
                    rec.update(iter=self.iteration, ms_per_iter=1000.0 * dt / count, time=time.time())
                    self._log(rec)
                    if on_log is not None and self.rank == 0:
                        on_log(self.iteration, rec)
                    bar.set_postfix(
                        G=f"{rec['loss_g']:.3f}",
                        L1=f"{rec['loss_l1']:.4f}",
                        D=f"{rec['loss_d_fake'] + rec['loss_d_real']:.3f}",
                    )
                    sums, count, t0 = {}, 0, time.perf_counter()
                if (
                    cfg.preview_every > 0
                    and self.iteration % cfg.preview_every == 0
                    and self.iteration != stop
                ):
                    self.preview()
                if (
                    cfg.checkpoint_every > 0
                    and self.iteration % cfg.checkpoint_every == 0
                    and self.iteration != stop
                ):
                    self.save_checkpoint()
                if self.stopped_by_time:
                    log.info(
                        "training stopped by its time limit (%.0f s) at iteration %d of %d",
                        time_limit, self.iteration, asked,
                    )  # fmt: skip
                    break
        finally:
            bar.close()
        self.preview()
        self.save_checkpoint()
        if self.ddp:
            import torch.distributed as dist

            dist.barrier()
        return self.last_losses

    # --------------------------------------------------------------------------------------- previews

    @torch.no_grad()
    def predict(self, volume: torch.Tensor) -> torch.Tensor:
        """Generator output in eval mode for volumes ``(B, 9Nw, S, S)`` -> ``(B, 3, S, S)`` in [-1, 1], float32."""
        was = self.G.training
        self.G.eval()
        try:
            with self._autocast():
                out: torch.Tensor = self.G(self._to_device(volume))
        finally:
            self.G.train(was)
        return out.float()

    def preview(self) -> Path | None:
        """Held-out L1 over the held-out set and a contact sheet of ``n_preview`` held-out frames (rank 0).

        Rows of the PNG: input colour render, output, ground truth. Logs ``heldout_l1`` and the PNG path.
        Uses no random numbers, so previews never change the training trajectory.
        """
        if self.rank != 0 or self.held_out is None or len(self.held_out) == 0:
            return None
        cfg = self.config
        n = len(self.held_out)
        total, count = 0.0, 0
        for s in range(0, n, cfg.batch):
            items = [self.held_out[k] for k in range(s, min(n, s + cfg.batch))]
            vol = torch.stack([v for v, _ in items])
            real = torch.stack([f for _, f in items])
            out = self.predict(vol).cpu()
            total += float((out - real).abs().mean()) * len(items)
            count += len(items)
        k = min(cfg.n_preview, n)
        pick = [round(i * (n - 1) / max(1, k - 1)) for i in range(k)] if k > 1 else [0]
        items = [self.held_out[i] for i in pick]
        vol = torch.stack([v for v, _ in items])
        real = torch.stack([f for _, f in items])
        out = self.predict(vol).cpu()
        path = self.out_dir / "previews" / f"iter_{self.iteration:08d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        write_contact_sheet(path, [to_unit(current_colour(vol, cfg.nw)), to_unit(out), to_unit(real)])
        self._log(
            {
                "iter": self.iteration,
                "heldout_l1": total / count,
                "preview": str(path.relative_to(self.out_dir)),
            }
        )
        return path
