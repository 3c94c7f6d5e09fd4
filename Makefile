# Lathe's make targets. Building and testing use SwiftPM directly (see README.md); make only runs
# the benchmark suite, which is not part of the tests.

PYTHON ?= python3
# Extra arguments for benchmarks/run.py, e.g. BENCH_ARGS="--models cnn_a mlp_8_12_8_1".
BENCH_ARGS ?=
RELEASE_BUILD = swift build -c release --product lathe && swift build -c release --product lathe-cli

.PHONY: help bench bench-quick bench-train

help: ## List the targets.
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

bench: ## Build the release library, then run Lathe vs ONNX Runtime on the seed models (~10 min; writes benchmarks/results/latest.*).
	$(RELEASE_BUILD)
	$(PYTHON) benchmarks/run.py $(BENCH_ARGS)

bench-quick: ## As bench with fewer runs (~1 min; writes benchmarks/results/quick.*, not committed).
	$(RELEASE_BUILD)
	$(PYTHON) benchmarks/run.py --quick $(BENCH_ARGS)

bench-train: ## Build the release library, then time one training epoch of CNN A, CNN B and the LSTM stack in Lathe, PyTorch and Keras (~5 min; writes benchmarks/results/train_latest.*).
	swift build -c release --product lathe
	$(PYTHON) benchmarks/train_bench.py $(BENCH_ARGS)
