"""dvp_engine.transfer: source-to-target transfer modes, curve edits and retiming (numpy only)."""

from .edit import apply_look_at, apply_sets, parse_look_at, parse_set
from .modes import MODES, TransferReport, choose_neutral, transfer
from .retime import change_rate, hold, retime, sample_track, speed_ramp

__all__ = [
    "MODES",
    "TransferReport",
    "apply_look_at",
    "apply_sets",
    "change_rate",
    "choose_neutral",
    "hold",
    "parse_look_at",
    "parse_set",
    "retime",
    "sample_track",
    "speed_ramp",
    "transfer",
]
