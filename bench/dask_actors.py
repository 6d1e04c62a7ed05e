#!/usr/bin/python3
"""Dask's actors (actor=True) on the calls lumen's microbenchmark makes:
1:1 sync (call, wait, repeat) and 1:1 async (submit a batch, wait for all).
Prints calls/s as JSON. Run by bench/compare_dask.sh beside lumen's numbers."""
import json
import sys
import time

from distributed import Client, LocalCluster


class Target:
    def ping(self, x):
        return x


def rate(fn, min_seconds):
    calls, start = 0, time.perf_counter()
    while time.perf_counter() - start < min_seconds:
        calls += fn()
    return calls / (time.perf_counter() - start)


def main():
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 3.0
    batch = 1000
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        target = client.submit(Target, actor=True).result()
        target.ping(0).result()

        def sync_call():
            target.ping(1).result()
            return 1

        def async_batch():
            futures = [target.ping(i) for i in range(batch)]
            for f in futures:
                f.result()
            return batch

        print(json.dumps({"dask_actor_calls_1_1_sync": rate(sync_call, seconds),
                          "dask_actor_calls_1_1_async": rate(async_batch, seconds)}))


if __name__ == "__main__":
    main()
