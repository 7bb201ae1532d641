# The two commands: `make demo` (the main job on built-in data) and `make test`.
# Both build .venv first when it is missing (scripts/bootstrap.sh).
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.bootstrapped

.PHONY: demo test venv bench gpu-check doctor clean-demo

$(STAMP): pyproject.toml requirements/constraints.txt scripts/bootstrap.sh
	bash scripts/bootstrap.sh

venv: $(STAMP)

demo: $(STAMP)
	bash scripts/demo.sh

test: $(STAMP)
	$(PY) -m pytest -q -p no:cacheprovider

bench: $(STAMP)
	$(PY) benchmarks/gcp_layer.py
	$(PY) benchmarks/throughput.py

# On a CUDA machine (< 10 minutes): layer, train steps, training, eval-c/-p, detection, NCCL;
# one JSON summary in runs/gpu-check/gpu_check.json. Without CUDA it says so (exit 2).
gpu-check: $(STAMP)
	$(PY) benchmarks/gpu_check.py

doctor: $(STAMP)
	$(PY) -m gcpbench doctor

clean-demo:
	rm -rf runs/demo
