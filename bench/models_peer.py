#!/usr/bin/python3
"""The Python peer of bench/models_bench.cc: what a team without a serving
system would write to put a TorchScript model behind HTTP. aiohttp and torch
(Debian: python3-aiohttp, python3-torch), one process by default, forward()
in the event loop (or in a thread pool with --executor thread), answering
the same KServe v2 JSON as lumen for one model:

  POST /v2/models/<name>/infer  {"inputs":[{"name","datatype":"FP32","shape","data"}]}
  GET  /v2/models/<name>/ready

  models_peer.py --model /path/model.pt [--name mlp] [--port 8081]
                 [--workers 1] [--executor loop|thread]

--workers N forks N processes sharing the port (SO_REUSEPORT), as one would
with gunicorn.
"""

import argparse
import asyncio
import concurrent.futures
import json
import multiprocessing
import os
import signal
import sys

import torch
from aiohttp import web


def serve(args):
    torch.set_num_threads(1)
    model = torch.jit.load(args.model)
    model.eval()
    pool = (concurrent.futures.ThreadPoolExecutor(max_workers=args.threads)
            if args.executor == "thread" else None)

    def run(data, shape):
        with torch.inference_mode():
            x = torch.tensor(data, dtype=torch.float32).reshape(shape)
            y = model(x)
        return y

    with torch.inference_mode():  # the profiling executor optimizes after two runs
        for _ in range(3):
            model(torch.zeros(1, args.in_features))

    async def infer(request):
        if request.match_info["name"] != args.name:
            return web.json_response({"error": "no such model"}, status=404)
        try:
            body = await request.json()
            t = body["inputs"][0]
            if t.get("datatype") != "FP32":
                raise ValueError("expected FP32")
            if pool is None:
                y = run(t["data"], t["shape"])
            else:
                y = await asyncio.get_running_loop().run_in_executor(
                    pool, run, t["data"], t["shape"])
        except (ValueError, KeyError, TypeError, RuntimeError) as e:
            return web.json_response({"error": str(e)}, status=400)
        out = {
            "model_name": args.name,
            "outputs": [{
                "name": "OUTPUT__0",
                "datatype": "FP32",
                "shape": list(y.shape),
                "data": y.flatten().tolist(),
            }],
        }
        return web.Response(text=json.dumps(out), content_type="application/json")

    async def ready(request):
        if request.match_info["name"] != args.name:
            return web.Response(status=404)
        return web.Response(text="")

    app = web.Application()
    app.router.add_post("/v2/models/{name}/infer", infer)
    app.router.add_get("/v2/models/{name}/ready", ready)
    web.run_app(app, host="127.0.0.1", port=args.port, reuse_port=args.workers > 1,
                access_log=None, print=None, backlog=1024)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--model", required=True)
    p.add_argument("--name", default="mlp")
    p.add_argument("--port", type=int, default=8081)
    p.add_argument("--in-features", type=int, default=64)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--executor", choices=["loop", "thread"], default="loop")
    p.add_argument("--threads", type=int, default=4, help="thread pool size (--executor thread)")
    args = p.parse_args()
    if args.workers <= 1:
        serve(args)
        return
    procs = [multiprocessing.Process(target=serve, args=(args,)) for _ in range(args.workers)]
    for proc in procs:
        proc.start()

    def stop(signum, frame):
        for proc in procs:
            if proc.pid:
                os.kill(proc.pid, signal.SIGINT)

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    for proc in procs:
        proc.join()
    sys.exit(0)


if __name__ == "__main__":
    main()
