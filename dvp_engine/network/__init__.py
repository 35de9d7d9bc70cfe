"""dvp_engine.network: the rendering-to-video translation network (paper section 6).

Generator (U-Net with refinement, Fig. 4), PatchGAN discriminator, adversarial training with resumable
safetensors checkpoints, batched inference, TorchScript export for Nuke CopyCat, and evaluation helpers.
Images are display-referred sRGB mapped to [-1, 1]; volumes stack Nw frames x (colour, correspondence, gaze).
"""

from .checkpoint import (
    ArchitectureMismatchError,
    CheckpointError,
    checkpoint_hash,
    latest_checkpoint,
    load_generator,
)
from .data import PairDataset, current_colour, held_out_split, stack_window, to_network_range, window_indices
from .discriminator import DiscriminatorConfig, PatchDiscriminator, init_weights
from .evaluate import (
    evaluate_dataset,
    evaluate_frames,
    l1,
    nearest_neighbour,
    psnr,
    ssim,
    temporal_stability,
    to_unit,
    write_contact_sheet,
)
from .export import CopyCatWrapper, export_torchscript
from .generator import GeneratorConfig, SpaceTimeGenerator
from .infer import Renderer, infer
from .stats import count_parameters, generator_flops
from .train import TrainConfig, Trainer

__all__ = [
    "ArchitectureMismatchError",
    "CheckpointError",
    "CopyCatWrapper",
    "DiscriminatorConfig",
    "GeneratorConfig",
    "PairDataset",
    "PatchDiscriminator",
    "Renderer",
    "SpaceTimeGenerator",
    "TrainConfig",
    "Trainer",
    "checkpoint_hash",
    "count_parameters",
    "current_colour",
    "evaluate_dataset",
    "evaluate_frames",
    "export_torchscript",
    "generator_flops",
    "held_out_split",
    "infer",
    "init_weights",
    "l1",
    "latest_checkpoint",
    "load_generator",
    "nearest_neighbour",
    "psnr",
    "ssim",
    "stack_window",
    "temporal_stability",
    "to_network_range",
    "to_unit",
    "window_indices",
    "write_contact_sheet",
]
