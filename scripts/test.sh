#!/usr/bin/env bash
# Runs every Lathe test: the Swift suites (swift test), then the Python, C-ABI, seed-model and
# ONNX node-suite tests (pytest) against the freshly built liblathe.so. Ends with pytest's summary.
set -uo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh || exit 1

swift build --product lathe || exit 1
# The allocation-count test (test_alloc_free.py) measures the optimized library.
swift build -c release --product lathe || exit 1
swift test 2>&1 | tee /tmp/lathe-swift-test.log | grep -vE '^(◇|↳|Test Case .* started|Test Suite .* started)'
swift_status=${PIPESTATUS[0]}

export LATHE_LIBRARY="$PWD/.build/debug/liblathe.so"
export PYTHONPATH="$PWD/bindings/python${PYTHONPATH:+:$PYTHONPATH}"
python3 -m pytest -q bindings/python/tests
py_status=$?

[ "$swift_status" -eq 0 ] && [ "$py_status" -eq 0 ]
