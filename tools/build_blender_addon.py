"""Build the DVP Blender extension zip: blender_addon/ plus a vendored copy of dvp_engine/core.

Usage::

    python tools/build_blender_addon.py --out dist/

writes ``dist/dvp-<version>.zip`` (the manifest's id and version). The zip holds the add-on's files at its
root (``blender_manifest.toml``, ``__init__.py``, ...) and ``dvp_core/`` = ``dvp_engine/core`` (numpy + stdlib;
its imports are relative, so it works as a subpackage). Install it in Blender 5.0+ with
Edit > Preferences > Get Extensions > Install from Disk, or ``blender --command extension install-file``.
Stdlib only; the zip is reproducible (sorted entries, fixed timestamps).
"""

from __future__ import annotations

import argparse
import sys
import tomllib
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ADDON = REPO / "blender_addon"
CORE = REPO / "dvp_engine" / "core"
VENDOR_NAME = "dvp_core"
_EPOCH = (2020, 1, 1, 0, 0, 0)


def _files(root: Path) -> list[Path]:
    return sorted(
        p
        for p in root.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and p.suffix not in (".pyc", ".pyo")
    )


def manifest(addon: Path = ADDON) -> dict[str, object]:
    """The parsed ``blender_manifest.toml``."""
    with open(addon / "blender_manifest.toml", "rb") as fh:
        return tomllib.load(fh)


def build(out_dir: Path, addon: Path = ADDON, core: Path = CORE) -> Path:
    """Write ``<out_dir>/<id>-<version>.zip`` atomically and return its path."""
    info = manifest(addon)
    if (addon / VENDOR_NAME).exists():
        raise SystemExit(
            f"{addon / VENDOR_NAME} exists in the source tree; remove it (it is built, not kept)"
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    dest = out_dir / f"{info['id']}-{info['version']}.zip"
    tmp = dest.with_suffix(".zip.tmp")
    entries = [(p, p.relative_to(addon).as_posix()) for p in _files(addon)]
    entries += [(p, f"{VENDOR_NAME}/{p.relative_to(core).as_posix()}") for p in _files(core)]
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
        for src, name in sorted(entries, key=lambda e: e[1]):
            zi = zipfile.ZipInfo(name, _EPOCH)
            zi.compress_type = zipfile.ZIP_DEFLATED
            zi.external_attr = 0o644 << 16
            zf.writestr(zi, src.read_bytes())
    tmp.replace(dest)
    return dest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=REPO / "dist", help="output folder (default dist/)")
    args = parser.parse_args(argv)
    path = build(args.out)
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
