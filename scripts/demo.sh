#!/usr/bin/env bash
# Lathe's main job, end to end on a bare machine: build liblathe.so, generate a defect-inspection
# CNN as ONNX, and predict with it from C and from Python, printing the class probabilities.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh

echo "== building liblathe.so (release)"
swift build -c release --product lathe
lib_dir="$PWD/.build/release"

echo "== generating the defect-inspection CNN (scripts/make_seed_models.py)"
mkdir -p build/demo
python3 scripts/make_seed_models.py --out build/demo >/dev/null
model=build/demo/defect_cnn.onnx
ls -l "$model"

echo "== predicting from C (examples/c/predict.c)"
cc -std=c99 -O2 -Wall -Wextra -Werror -Iinclude examples/c/predict.c -o build/demo/predict \
   -L"$lib_dir" -llathe -Wl,-rpath,"$lib_dir"
build/demo/predict "$model"

echo "== predicting from Python (examples/python/inspect_parts.py)"
LATHE_LIBRARY="$lib_dir/liblathe.so" PYTHONPATH="$PWD/bindings/python" python3 examples/python/inspect_parts.py "$model"
