#!/usr/bin/env bash
# Regenerates Sources/LatheONNX/onnx.pb.swift from protos/onnx.proto (copied from the onnx pip package).
# Needs protoc (apt-get install protobuf-compiler) and protoc-gen-swift built from the swift-protobuf
# package copy: swift build -c release --product protoc-gen-swift (in a checkout of apple/swift-protobuf 1.39.0).
set -euo pipefail
cd "$(dirname "$0")/.."
PLUGIN=${PROTOC_GEN_SWIFT:-/tmp/swift-protobuf/.build/release/protoc-gen-swift}
protoc --plugin=protoc-gen-swift="$PLUGIN" --swift_out=Sources/LatheONNX \
  --swift_opt=Visibility=Package -I protos protos/onnx.proto
