#!/usr/bin/env bash
# Installs what building and testing Lathe needs on a bare Debian 12 machine with the Swift toolchain:
# Debian's OpenBLAS, DLPack, libffi, valgrind and a C compiler; Python's numpy, onnx, onnxruntime, pytest,
# scikit-learn and skl2onnx (exporter tests).
# Safe to re-run: installs only what is missing.
set -euo pipefail
apt_packages=(libopenblas-dev libdlpack-dev libffi-dev valgrind gcc g++)
missing=()
for p in "${apt_packages[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi
python3 - <<'PY' || python3 -m pip install -q --disable-pip-version-check "numpy>=1.26" "onnx==1.22.0" "onnxruntime>=1.20" "pytest>=8" "scikit-learn>=1.3" "skl2onnx>=1.16"
import importlib, sys
need = {"numpy": None, "onnx": "1.22.0", "onnxruntime": None, "pytest": None, "sklearn": None, "skl2onnx": None}
for name, version in need.items():
    module = importlib.import_module(name)
    if version and module.__version__ != version:
        sys.exit(1)
PY
