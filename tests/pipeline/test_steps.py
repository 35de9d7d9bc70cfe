from __future__ import annotations

from pathlib import Path

import pytest

from dvp_engine.pipeline import Step, run_steps


def test_resume_skips_finished_steps_and_redoes_changed(tmp_path: Path) -> None:
    calls: list[str] = []
    src = tmp_path / "in.txt"
    src.write_text("a")
    a_out, b_out = tmp_path / "a.txt", tmp_path / "b.txt"

    def step_a() -> None:
        calls.append("a")
        a_out.write_text(src.read_text() + "!")

    def step_b(fail: bool = False) -> None:
        calls.append("b")
        if fail:
            raise KeyboardInterrupt  # an interruption during step b
        b_out.write_text(a_out.read_text() + "?")

    steps = lambda fail=False: [  # noqa: E731
        Step("a", step_a, [a_out], {"src": src}),
        Step("b", lambda: step_b(fail), [b_out], {"a": a_out}),
    ]
    with pytest.raises(KeyboardInterrupt):
        run_steps(steps(fail=True), tmp_path)
    assert calls == ["a", "b"]
    assert run_steps(steps(), tmp_path) == ["b"]  # a is not redone after the interruption
    assert run_steps(steps(), tmp_path) == []
    assert b_out.read_text() == "a!?"
    src.write_text("changed")
    assert run_steps(steps(), tmp_path) == ["a", "b"]
    b_out.unlink()
    assert run_steps(steps(), tmp_path) == ["b"]


def test_step_must_write_outputs(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="did not write"):
        run_steps([Step("x", lambda: None, [tmp_path / "never"])], tmp_path)
