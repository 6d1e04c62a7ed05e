#!/usr/bin/env bash
# lumen's actors against Dask's (actor=True) on the same calls, in one run:
# 1:1 sync and 1:1 async calls per second, and their ratios.
#   scripts/setup.sh --bench && bench/compare_dask.sh [build_dir]
set -euo pipefail
build=${1:-build/release}
lumen=$("$build/bin/microbenchmark" --benchmark_filter='actor_calls_1_1_(sync|async)' \
          --benchmark_format=json 2>/dev/null)
dask=$(/usr/bin/python3 "$(dirname "$0")/dask_actors.py" 3 2>/dev/null | tail -1)
/usr/bin/python3 - "$lumen" "$dask" <<'PY'
import json, sys
lumen = {b["name"].split("/")[0]: b["items_per_second"] for b in json.loads(sys.argv[1])["benchmarks"]}
dask = json.loads(sys.argv[2])
print(f"{'calls':<28}{'lumen/s':>12}{'dask/s':>12}{'ratio':>9}")
for name in ("actor_calls_1_1_sync", "actor_calls_1_1_async"):
    l, d = lumen[name], dask["dask_" + name]
    print(f"{name:<28}{l:>12,.0f}{d:>12,.0f}{l / d:>8.1f}x")
PY
