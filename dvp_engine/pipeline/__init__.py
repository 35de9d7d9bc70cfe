"""dvp_engine.pipeline: resumable multi-step jobs (track -> train -> render) for `dvp reenact` and the demo."""

from .steps import JobState, Step, fingerprint, run_steps

__all__ = ["JobState", "Step", "fingerprint", "run_steps"]
