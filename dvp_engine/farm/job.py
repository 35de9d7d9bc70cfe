"""The ``dvp reenact`` job as farm steps: written once here, turned into an OpenJD template (:mod:`.openjd`) or an
OpenCue outline (:mod:`.opencue`).

The steps are the ones :func:`dvp_engine.pipeline.reenact.run_reenact` runs, as plain ``dvp`` command lines over
one job folder on shared storage (the same layout as ``dvp reenact -o``)::

    JobDir/work/target.npz     track target   (one task, or identity + chunks + merge)
    JobDir/work/source.npz     track source   (the same; absent when source and target are one video)
    JobDir/model/              train          (one task on a GPU host; DDP over its GPUs via torchrun)
    JobDir/work/reenacted.npz  transfer       (mode, reference frames, curve files, --set edits)
    JobDir/frames/frame.####.exr  render      (one task per chunk of frames; a retried task rewrites its own)
    JobDir/preview.mp4, contact_sheet.png     preview

Commands are lists of arguments in which ``{Name}`` stands for a job parameter (the paths: ``Source``,
``Target``, ``JobDir``, ``Model``, ``Curves1``...) and ``{Frames}`` for the frames of the task; each backend
writes those in its own syntax. Frame lists are fixed when the job is written (they come from the videos'
lengths, ``--track-frames`` and ``--frames``, exactly as ``dvp reenact`` derives them).
"""

from __future__ import annotations

import math
import shlex
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

from dvp_engine.core.errors import DvpError
from dvp_engine.core.frames import FrameSet

MODES = ("full", "expression", "gaze", "pose", "dubbing")


class FarmSettingsError(DvpError):
    """Settings a farm job cannot have (a relative path, a chunk size below 1, an unknown mode): a usage error."""


@dataclass
class Needs:
    """What a step's host needs: GPUs (0 = none), memory and scratch disk in GiB, CPU cores."""

    gpus: int = 0
    memory_gib: int = 4
    vcpus: int = 1
    disk_gib: int = 1
    gpu_memory_gib: int = 0


@dataclass
class Param:
    """A job parameter: a PATH (``object_type`` FILE or DIRECTORY, ``data_flow`` IN or OUT) or a STRING/INT."""

    name: str
    kind: str
    value: str | int
    description: str
    object_type: str | None = None
    data_flow: str | None = None


@dataclass
class FarmStep:
    """One step of the job.

    Attributes:
        name: the step (OpenJD step, OpenCue layer) name.
        description: what it does, for people.
        command: the arguments, with ``{Param}`` and ``{Frames}`` placeholders.
        depends: names of the steps it waits for (all of their tasks).
        chunks: the frames of each task as frame-range text (``"1-10"``), or None for a single task.
        needs: host requirements.
    """

    name: str
    description: str
    command: list[str]
    depends: list[str] = field(default_factory=list)
    chunks: list[str] | None = None
    needs: Needs = field(default_factory=Needs)


@dataclass
class FarmJob:
    """The whole job: a name, its parameters and its steps in an order that respects the dependencies."""

    name: str
    params: list[Param]
    steps: list[FarmStep]

    def step(self, name: str) -> FarmStep:
        """The step called ``name`` (KeyError if none)."""
        for s in self.steps:
            if s.name == name:
                return s
        raise KeyError(name)

    def values(self) -> dict[str, str | int]:
        """Job parameter name -> value."""
        return {p.name: p.value for p in self.params}


@dataclass
class FarmSettings:
    """The options of ``dvp farm`` (those of ``dvp reenact`` plus the chunking and the farm's hosts).

    Paths must be absolute: farm hosts do not share the working directory.
    """

    source: str
    target: str
    out: Path
    mode: str = "full"
    model: Path | None = None
    frames: str | None = None
    track_frames: str | None = None
    source_reference: int | None = None
    target_reference: int | None = None
    curves: list[Path] = field(default_factory=list)
    sets: list[str] = field(default_factory=list)
    size: int = 256
    iters: int = 31000
    time_limit: float | None = None
    """minutes of training per attempt of the train task (None: until ``iters``)."""
    batch: int = 16
    ngf: int = 64
    seed: int = 0
    framing: str = "auto"
    preview: bool = True
    chunk: int = 10
    track_chunk: int = 0
    train_gpus: int = 1
    gpu: bool = True
    device: str = "auto"
    dvp: str = "dvp"
    name: str = ""


def require_absolute(path: str | Path, what: str) -> None:
    """Refuse a relative path (farm hosts do not share the working directory)."""
    if not Path(path).is_absolute():
        raise FarmSettingsError(
            f"{what} is a relative path: farm hosts do not share this working directory; give an absolute path",
            path=path,
        )


def video_frames(video: str) -> FrameSet | None:
    """The frame numbers of a movie (1..N) or an image sequence on disk; None when they cannot be read."""
    from dvp_engine.io.video import MOVIE_SUFFIXES, open_video

    try:
        if Path(video).suffix.lower() in MOVIE_SUFFIXES:
            with open_video(video) as v:
                return FrameSet.from_range(1, int(v.n_frames))
        from dvp_engine.core.sequence import ImageSequence

        return ImageSequence.find(video).frame_range
    except Exception:
        return None


def tracked_frames(video: str, track_frames: str | None) -> FrameSet:
    """The frames ``dvp track`` will track: ``--track-frames`` (default all) that the video has."""
    have = video_frames(video)
    if have is None:
        raise DvpError("cannot read the video to count its frames", path=video)
    if track_frames is None:
        return have
    want = FrameSet.parse(track_frames) & have
    if not want:
        raise DvpError(f"the video has none of the frames {track_frames} (it has {have})", path=video)
    return want


def reenacted_frames(
    target_frames: FrameSet, source_frames: FrameSet | None, target_rate: Fraction, source_rate: Fraction
) -> FrameSet:
    """The frames of the transferred track (:func:`dvp_engine.transfer.transfer`): the target's numbering from
    its first frame, for the source's duration at the target's rate (the target's own length for an edit)."""
    t0 = target_frames.first
    if source_frames is None:
        n = len(target_frames)
    else:
        duration = float(Fraction(source_frames.last - source_frames.first) / source_rate)
        n = int(math.floor(duration * float(target_rate) + 1e-9)) + 1
    return FrameSet.from_range(t0, t0 + n - 1)


def split(frames: FrameSet, size: int) -> list[str]:
    """``frames`` in consecutive chunks of ``size`` frames, as frame-range text."""
    fr = list(frames)
    step = max(1, size)
    return [str(FrameSet.from_frames(fr[i : i + step])) for i in range(0, len(fr), step)]


def describe_job(s: FarmSettings) -> FarmJob:
    """The farm job of a reenactment with these settings (see the module docstring)."""
    from dvp_engine.tracking.pipeline import source_rate

    for value, what in ((s.source, "--source"), (s.target, "--target"), (s.out, "--job-dir")):
        require_absolute(value, what)
    if s.model is not None:
        require_absolute(s.model, "--model")
        if not (s.model / "dvp_model.json").is_file():
            raise DvpError("not a trained model folder (no dvp_model.json)", path=s.model)
    for c in s.curves:
        require_absolute(c, "--curves")
        if not Path(c).is_file():
            raise DvpError("curve file not found", path=c)
    if s.mode not in MODES:
        raise FarmSettingsError(f"unknown mode {s.mode!r}; choose one of {', '.join(MODES)}")
    if s.chunk < 1 or s.train_gpus < 1 or s.track_chunk < 0:
        raise FarmSettingsError("--chunk and --train-gpus must be at least 1, --track-chunk at least 0")
    same = Path(s.source).resolve() == Path(s.target).resolve()
    tgt_frames = tracked_frames(s.target, s.track_frames)
    src_frames = None if same else tracked_frames(s.source, s.track_frames)
    out_frames = reenacted_frames(
        tgt_frames,
        src_frames,
        source_rate(s.target),
        source_rate(s.source) if not same else Fraction(1),
    )
    wanted = FrameSet.parse(s.frames) & out_frames if s.frames else out_frames
    if not wanted:
        raise DvpError(f"none of the frames {s.frames} is in the reenacted range {out_frames}")

    params = [
        Param("Target", "PATH", s.target, "the target actor's video", _object(s.target), "IN"),
        Param("JobDir", "PATH", str(s.out), "job folder on shared storage (tracks, model, frames)", "DIRECTORY", "OUT"),
    ]  # fmt: skip
    if not same:
        params.insert(
            0, Param("Source", "PATH", s.source, "the source actor's video", _object(s.source), "IN")
        )
    if s.model is not None:
        params.append(
            Param("Model", "PATH", str(s.model), "a trained target model folder", "DIRECTORY", "IN")
        )
    for i, c in enumerate(s.curves, 1):
        params.append(
            Param(f"Curves{i}", "PATH", str(c), f"curve file {i}, applied after transfer", "FILE", "IN")
        )
    src = "{Target}" if same else "{Source}"
    dvp = shlex.split(s.dvp) or ["dvp"]
    dev = ["--device", s.device]
    steps: list[FarmStep] = []

    def track(actor: str, video: str, frames: FrameSet) -> str:
        dest = f"{{JobDir}}/work/{actor}.npz"
        title = f"Track{actor.capitalize()}"
        fr = ["--frames", str(frames)]
        need = Needs(memory_gib=4, vcpus=2, disk_gib=1)
        if s.track_chunk == 0 or len(frames) <= s.track_chunk:
            steps.append(FarmStep(title, f"track the {actor} video", [*dvp, "track", video, "-o", dest, *fr,
                                                                         *dev, "--overwrite"], needs=need))  # fmt: skip
            return title
        ident = f"{{JobDir}}/work/{actor}.identity.npz"
        chunks = split(frames, s.track_chunk)
        part = f"{{JobDir}}/work/{actor}.chunks/{{Frames}}.npz"
        steps.append(FarmStep(f"{title}Identity", f"landmarks of every {actor} frame and the identity solve",
                              [*dvp, "track", video, "--identity-only", "-o", ident, *fr, *dev, "--overwrite"],
                              needs=need))  # fmt: skip
        steps.append(FarmStep(f"{title}Chunks", f"track the {actor} video, a chunk of frames per task",
                              [*dvp, "track", video, "--identity", ident, "--frames", "{Frames}", "-o", part, *dev,
                               "--overwrite"], [f"{title}Identity"], chunks, need))  # fmt: skip
        parts = [f"{{JobDir}}/work/{actor}.chunks/{c}.npz" for c in chunks]
        steps.append(FarmStep(title, f"merge the {actor} chunks", [*dvp, "track", "--merge", *parts, "-o", dest,
                                                                  "--overwrite"], [f"{title}Chunks"], needs=need))  # fmt: skip
        return title

    tgt_step = track("target", "{Target}", tgt_frames)
    src_step = tgt_step if same else track("source", "{Source}", src_frames or tgt_frames)
    tgt_npz = "{JobDir}/work/target.npz"
    src_npz = tgt_npz if same else "{JobDir}/work/source.npz"
    model = "{Model}" if s.model is not None else "{JobDir}/model"
    gpu = s.gpu
    ahead = [tgt_step] if same else [tgt_step, src_step]
    if s.model is None:
        every = str(max(1, s.iters // 4))
        args = ["train", "--track", tgt_npz, "--frames-from", "{Target}", "-o", model, "--size", str(s.size),
                "--iters", str(s.iters), "--batch", str(s.batch), "--ngf", str(s.ngf), "--seed", str(s.seed),
                "--framing", s.framing, "--preview-every", every, "--checkpoint-every", every, "--resume", *dev]  # fmt: skip
        if s.time_limit is not None:
            args += ["--time-limit", f"{s.time_limit:g}"]
        if s.train_gpus > 1:
            cmd = [
                "torchrun",
                "--standalone",
                f"--nproc-per-node={s.train_gpus}",
                "-m",
                "dvp_engine.cli.main",
                *args,
            ]
        else:
            cmd = [*dvp, *args]
        need = Needs(gpus=s.train_gpus if gpu else 0, memory_gib=16, vcpus=4, disk_gib=20,
                     gpu_memory_gib=16 if gpu else 0)  # fmt: skip
        steps.append(FarmStep("Train", "train the target's network (resumes a killed run)", cmd, [tgt_step],
                              needs=need))  # fmt: skip
        ahead.append("Train")
    transfer = [*dvp, "transfer", "--source-track", src_npz, "--target-track", tgt_npz, "--mode", s.mode,
                "-o", "{JobDir}/work/reenacted.npz", "--overwrite", "--source-video", src, "--target-video", "{Target}"]  # fmt: skip
    if s.source_reference is not None:
        transfer += ["--source-reference", str(s.source_reference)]
    if s.target_reference is not None:
        transfer += ["--target-reference", str(s.target_reference)]
    for i in range(1, len(s.curves) + 1):
        transfer += ["--curves", f"{{Curves{i}}}"]
    for e in s.sets:
        transfer += ["--set", e]
    steps.append(FarmStep("Transfer", f"transfer ({s.mode}) and edits", transfer, [n for n in ahead if n != "Train"],
                          needs=Needs(memory_gib=2)))  # fmt: skip
    render = [*dvp, "render", "--model", model, "--track", "{JobDir}/work/reenacted.npz", "-o",
              "{JobDir}/frames/frame.####.exr", "--frames", "{Frames}", "--batch", str(min(s.batch, 8)),
              "--overwrite", *dev]  # fmt: skip
    render_after = ["Transfer", "Train"] if s.model is None else ["Transfer"]
    steps.append(FarmStep("Render", "render the frames, a chunk per task (a retry rewrites only its chunk)", render,
                          render_after, split(wanted, s.chunk),
                          Needs(gpus=1 if gpu else 0, memory_gib=8, vcpus=2, disk_gib=2,
                                gpu_memory_gib=8 if gpu else 0)))  # fmt: skip
    if s.preview:
        prev = [*dvp, "preview", "--source", src, "--source-track", src_npz, "--track", "{JobDir}/work/reenacted.npz",
                "--model", model, "--frames-from", "{JobDir}/frames/frame.####.exr", "-o", "{JobDir}", *dev]  # fmt: skip
        if s.frames:
            prev += ["--frames", str(wanted)]
        steps.append(FarmStep("Preview", "side-by-side preview MP4 and contact sheet", prev, ["Render"],
                              needs=Needs(memory_gib=4)))  # fmt: skip
    name = s.name or f"dvp reenact {Path(s.target).stem} ({s.mode})"
    return FarmJob(name, params, steps)


def _object(path: str) -> str | None:
    """FILE for a movie file; None (no object type) for an image-sequence pattern, which is not one file."""
    from dvp_engine.core.sequence import is_pattern

    return None if is_pattern(path) else "FILE"
