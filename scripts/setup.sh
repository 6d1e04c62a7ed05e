#!/usr/bin/env bash
# Installs the Debian 12 packages lumen needs to build, test and run.
# Idempotent: when everything is present it only asks dpkg and returns.
set -euo pipefail

PACKAGES=(
  build-essential cmake ninja-build ccache pkg-config git
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libabsl-dev libssl-dev libmsgpack-cxx-dev libboost-dev
  nlohmann-json3-dev libcli11-dev libspdlog-dev libfmt-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  clang-format clang-tidy procps openssl clang libclang-rt-14-dev
  # metrics: prometheus-cpp for the exposition; the Prometheus server for its test
  prometheus-cpp-dev prometheus
  # the dashboard's browser test: headless Chromium driven by chromedriver
  chromium chromium-driver
  libhiredis-dev redis-server libyaml-cpp-dev
  # the model layer (models/): its engines, the semantic cache, test models
  libopencv-dev libopencv-dnn-dev libtorch-dev libxgboost-dev
  libtesseract-dev libleptonica-dev tesseract-ocr-eng libfaiss-dev python3-onnx
  # OpenBLAS, single-threaded (replicas are the parallelism): it then serves
  # libblas.so.3 for libtorch and faiss instead of the reference BLAS, whose
  # scalar loops are 10-15x slower (docs/benchmarks.md)
  libopenblas0-serial
)
# `setup.sh --bench` adds what the peer comparisons under bench/ run against.
if [[ "${1:-}" == "--bench" ]]; then
  PACKAGES+=(python3-distributed wrk nginx-light python3-torch python3-aiohttp)
fi

missing=()
for p in "${PACKAGES[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  [[ "$status" == "install ok installed" ]] || missing+=("$p")
done

if ((${#missing[@]} == 0)); then
  exit 0
fi

echo "setup: installing ${missing[*]}" >&2
SUDO=""
if [[ $(id -u) -ne 0 ]]; then
  if command -v sudo >/dev/null 2>&1; then
    SUDO="sudo"
  else
    echo "setup: need root (or sudo) to install: ${missing[*]}" >&2
    exit 1
  fi
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
