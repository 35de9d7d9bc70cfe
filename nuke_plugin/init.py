# DVP (Deep Video Portraits) Nuke plugin: add this folder to NUKE_PATH. See docs/nuke.md.
try:
    import dvp_nuke.startup as _dvp_startup

    _dvp_startup.run("init.py", _dvp_startup.on_init)
except Exception as _dvp_exc:  # a broken install reports itself and never stops Nuke's start-up
    import sys as _sys

    _sys.stderr.write(f"[dvp] the DVP Nuke plugin failed to load in init.py: {_dvp_exc!r}\n")
