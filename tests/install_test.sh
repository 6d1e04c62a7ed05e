#!/usr/bin/env bash
# Installs lumen into a temporary prefix, builds examples/hello as a user's
# own project would (find_package(lumen)), and runs it.
set -euo pipefail
build_dir=$1
source_dir=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cmake --install "$build_dir" --prefix "$tmp/prefix" >/dev/null
launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
cmake -S "$source_dir/examples/hello" -B "$tmp/build" -G Ninja \
  -DCMAKE_PREFIX_PATH="$tmp/prefix" "${launcher[@]}" >/dev/null
cmake --build "$tmp/build" >/dev/null
out=$("$tmp/build/hello")
echo "$out"
grep -q "Add(1, 2) = 3" <<<"$out"
grep -q "Sum of 2^24 halves = 8.38861e+06" <<<"$out"
