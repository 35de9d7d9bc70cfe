"""The farm job as an OpenCue outline (``opencue-pyoutline``), serialised to the job spec XML Cuebot takes.

Each step is a :class:`outline.modules.shell.Shell` layer. A single-task step has the range ``1``; a chunked
step has the step's frames as its range and the chunk size as its chunk, and its command names the chunk's
frames with OpenCue's ``#FRAME_START#-#FRAME_END#`` tokens (so chunked steps need frames that form one range,
optionally with a step: ``1001-1100`` or ``1001-1100x2``). Dependencies are layer-on-layer (a step waits for
every frame of the steps before it). OpenCue has no job parameters: the paths are written into the commands
(shell-quoted). Building the outline needs no Cuebot; submitting the spec does (see docs/farm.md).
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

from dvp_engine.core.atomic import write_text_atomic
from dvp_engine.core.errors import DvpError
from dvp_engine.core.frames import FrameSet

from .job import FarmJob, FarmStep

_PLACEHOLDER = re.compile(r"\{(\w+)\}")


def _cue_range(step: FarmStep) -> tuple[str, int, str]:
    """(layer range, chunk size, the command's frames token) of a chunked step."""
    assert step.chunks is not None
    frames = FrameSet.from_frames(f for c in step.chunks for f in FrameSet.parse(c))
    segs = frames.segments()
    if len(segs) != 1:
        raise DvpError(
            f"step {step.name}: OpenCue chunks need frames that form one range (with an optional step), "
            f"not {frames}"
        )
    first, last, by = segs[0]
    size = len(FrameSet.parse(step.chunks[0]))
    rng = f"{first}-{last}" + (f"x{by}" if by > 1 else "")
    return rng, size, "#FRAME_START#-#FRAME_END#" + (f"x{by}" if by > 1 else "")


def _command(step: FarmStep, values: dict[str, str | int], frames: str) -> str:
    def sub(m: re.Match[str]) -> str:
        name = m.group(1)
        if name == "Frames":
            return frames
        if name in values:
            return str(values[name])
        return m.group(0)

    args = [_PLACEHOLDER.sub(sub, a) for a in step.command]
    # chunk file names carry the frames token; OpenCue substitutes it in the quoted text as well
    return " ".join(shlex.quote(a) for a in args)


def build_outline(job: FarmJob, *, show: str = "dvp", shot: str = "reenact", user: str | None = None) -> Any:
    """The job as a pyoutline :class:`outline.Outline` with one Shell layer per step (no Cuebot needed)."""
    try:
        import outline
        from outline.modules.shell import Shell
    except ImportError as exc:  # pragma: no cover - the farm extra is missing
        raise DvpError("opencue-pyoutline is not installed (pip install 'dvp[farm]')") from exc
    name = re.sub(r"[^A-Za-z0-9_]+", "_", job.name).strip("_") or "dvp"
    ol = outline.Outline(name, shot=shot, show=show, user=user)
    values = job.values()
    layers: dict[str, Any] = {}
    for step in job.steps:
        if step.chunks is None:
            rng, chunk, token = "1", 1, ""
        else:
            rng, chunk, token = _cue_range(step)
        n = step.needs
        args: dict[str, Any] = {
            "command": _command(step, values, token),
            "range": rng,
            "chunk": chunk,
            "cores": n.vcpus,
            "memory": f"{n.memory_gib}g",
            "service": "dvp-gpu" if n.gpus else "dvp",
        }
        if n.gpus:
            args["gpus"] = n.gpus
            args["gpu_memory"] = f"{max(1, n.gpu_memory_gib)}g"
        layer = Shell(_layer_name(step.name), **args)
        ol.add_layer(layer)
        for dep in step.depends:
            layer.depend_all(layers[dep])
        layers[step.name] = layer
    return ol


def _layer_name(step: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", step).lower()  # TrackTargetChunks -> track_target_chunks


def job_spec(ol: Any, *, show: str = "dvp", shot: str = "reenact", user: str | None = None) -> str:
    """The OpenCue job spec XML the outline submits (pyoutline's serialiser, commands run as written)."""
    import outline.cuerun
    from outline.backend import cue

    launcher = outline.cuerun.OutlineLauncher(ol, show=show, shot=shot, user=user or "dvp", nomail=True)
    return str(cue.serialize_simple(launcher))


def write_spec(
    job: FarmJob, path: Path, *, overwrite: bool = False, show: str = "dvp", shot: str = "reenact"
) -> Path:
    """Build the outline and write its job spec to ``path`` (``.xml``); an existing file is kept unless
    ``overwrite``."""
    if path.exists() and not overwrite:
        raise DvpError("a job spec is already there; pass --overwrite to replace it", path=path)
    ol = build_outline(job, show=show, shot=shot)
    xml = job_spec(ol, show=show, shot=shot)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, xml + "\n")
    return path
