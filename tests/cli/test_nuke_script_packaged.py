"""`dvp nuke-script` works from the installed package alone: no nuke_plugin/ beside dvp_engine."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

from setuptools import find_packages

REPO = Path(__file__).resolve().parents[2]


def test_the_wheel_packages_the_nk_writer() -> None:
    cfg = tomllib.loads((REPO / "pyproject.toml").read_text("utf-8"))
    include = cfg["tool"]["setuptools"]["packages"]["find"]["include"]
    packages = find_packages(str(REPO), include=include)
    assert "dvp_engine.nkscript" in packages
    assert not any(p.startswith("dvp_nuke") or p.startswith("nuke_plugin") for p in packages)


def test_engine_cli_does_not_reach_into_the_adapter() -> None:
    bad = re.compile(r"^\s*(import|from)\s+dvp_nuke|[\"']nuke_plugin[\"']", re.MULTILINE)
    for path in (REPO / "dvp_engine").rglob("*.py"):
        assert not bad.search(path.read_text("utf-8")), path


def test_nuke_script_runs_from_a_copy_of_the_package_alone(tmp_path: Path) -> None:
    """As after `pip install dvp`: only dvp_engine/ on the path, no source tree around it."""
    site = tmp_path / "site"
    shutil.copytree(
        REPO / "dvp_engine", site / "dvp_engine", ignore=shutil.ignore_patterns("__pycache__", "sample")
    )
    code = (
        "import sys\n"
        "from fractions import Fraction\n"
        "import numpy as np\n"
        "from dvp_engine.core import FaceTrack, layout\n"
        "p = np.zeros((3, layout.FRAME_SIZE)); p[:, 5] = 0.6\n"
        f"FaceTrack.from_params([1, 2, 3], p, rate=Fraction(25), width=64, height=64,"
        f" intrinsics=(60.0, 60.0, 31.5, 31.5)).save(r'{tmp_path}/t.npz')\n"
        "from dvp_engine.cli.main import main\n"
        f"rc = main(['nuke-script', r'{tmp_path}/t.npz', '-o', r'{tmp_path}/t.nk', '--script'])\n"
        "assert 'dvp_nuke' not in sys.modules, 'the engine imported the Nuke adapter'\n"
        "sys.exit(rc)\n"
    )
    res = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
    )
    assert res.returncode == 0, res.stderr
    text = (tmp_path / "t.nk").read_text()
    assert "Group {" in text and "head_ry" in text
