"""Checkpoints a farm can trust (issue 17): readable by other users, byte-identical for identical weights,
and ``latest.json`` never followed outside its model folder."""

from __future__ import annotations

import json
import os
import shutil
import stat
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from torch import nn

from dvp_engine.network import checkpoint as ck


def tiny() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))


def write(root: Path, module: nn.Module, extra: dict[str, str]) -> Path:
    opt = torch.optim.Adam(module.parameters())
    return ck.write_checkpoint(
        root, 1, {"generator": (module, {"kind": "test"})}, {"optimizer_g": opt}, extra
    )


def test_checkpoint_folders_and_files_follow_the_umask(tmp_path: Path) -> None:
    umask = os.umask(0o022)
    os.umask(umask)  # the process's umask (dvp reads it once, at import)
    folder = write(tmp_path / "m", tiny(), {})
    assert stat.S_IMODE(folder.stat().st_mode) == 0o777 & ~umask
    assert 0o777 & ~umask != 0o700 or umask == 0o077  # not mkdtemp's private mode, unless the umask says so
    for f in folder.iterdir():
        assert stat.S_IMODE(f.stat().st_mode) == 0o666 & ~umask, f.name
    assert stat.S_IMODE((tmp_path / "m" / "latest.json").stat().st_mode) == 0o666 & ~umask


def test_identical_weights_give_identical_files(tmp_path: Path) -> None:
    m = tiny()
    meta_a = {"b": "2", "a": "1", "dvp.arch": "{}"}
    meta_b = {"dvp.arch": "{}", "a": "1", "b": "2"}  # same metadata, other insertion order
    sd = dict(m.state_dict())
    ck._save_safetensors(tmp_path / "a.safetensors", sd, meta_a)
    ck._save_safetensors(tmp_path / "b.safetensors", dict(reversed(list(sd.items()))), meta_b)
    assert (tmp_path / "a.safetensors").read_bytes() == (tmp_path / "b.safetensors").read_bytes()
    # and the file is a valid safetensors file holding exactly those tensors and metadata
    with safe_open(str(tmp_path / "a.safetensors"), framework="pt") as f:
        assert f.metadata() == meta_a
        for k, v in sd.items():
            torch.testing.assert_close(f.get_tensor(k), v, rtol=0, atol=0)
            assert f.get_tensor(k).dtype == v.dtype
    # whole checkpoints of the same weights hash the same
    one, two = (
        write(tmp_path / "x", tiny(), {"z": 1, "a": 2}),
        write(tmp_path / "y", tiny(), {"a": 2, "z": 1}),
    )
    assert ck.sha256_file(one / "generator.safetensors") == ck.sha256_file(two / "generator.safetensors")


@pytest.mark.parametrize("pointer", ["ABS", "../other/checkpoints/iter_00000001", "LINK"])
def test_latest_json_is_only_followed_inside_its_folder(tmp_path: Path, pointer: str) -> None:
    other = tmp_path / "other"
    write(other, tiny(), {})
    model = tmp_path / "model"
    (model / "checkpoints").mkdir(parents=True)
    target = other / "checkpoints" / "iter_00000001"
    if pointer == "ABS":
        rel = str(target)
    elif pointer == "LINK":
        (model / "checkpoints" / "iter_00000001").symlink_to(target)
        rel = "checkpoints/iter_00000001"
    else:
        rel = pointer
    (model / "latest.json").write_text(json.dumps({"format": "dvp.latest.1", "checkpoint": rel}))
    with pytest.raises(ck.CheckpointError, match="outside the model folder"):
        ck.latest_checkpoint(model)
    # the same checkpoint copied inside is followed
    shutil.rmtree(model / "checkpoints")
    shutil.copytree(other / "checkpoints", model / "checkpoints")
    (model / "latest.json").write_text(json.dumps({"checkpoint": "checkpoints/iter_00000001"}))
    assert ck.latest_checkpoint(model) == model / "checkpoints" / "iter_00000001"
