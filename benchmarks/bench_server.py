"""Policy-server overhead and throughput: what `robopolicy serve` adds to a policy call, on localhost.

Requests carry two 224×224 uint8 images and the state, as openpi's LIBERO client sends them; the
server resizes them to the policy's size. The server runs in its own process
(`robopolicy serve --execution.mode every_step`, so that every request samples a chunk) and the
clients in others.

1. Overhead at batch 1 (`--max-clients 1`): one client sends `--requests` requests one after another.
   Per request, the round trip minus the server's own policy call (`server_timing.infer_ms`: the
   selector's step, as in process) is what serving adds: decoding, the resize, the queue, the thread
   hand-off, encoding and the websocket both ways. For comparison, the same policy in this process
   (`PolicyRunner.act` on images already at the policy's size) and the resize of two 224×224 images
   alone.
2. Throughput with 1, 2 and 4 concurrent clients (`--max-clients 4`: each policy call has 4 rows, and
   requests that arrive together share one), each client in its own process sending requests one
   after another for `--seconds` seconds; and 1 client against `--max-clients 1`, to show what the
   padding rows cost.

Run: `python benchmarks/bench_server.py [--run runs/quickstart/train] [--requests 300] [--seconds 15]`;
prints a JSON line and a markdown table for benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))


def _request(rng: np.random.Generator, state_dim: int) -> dict[str, np.ndarray]:
    return {
        "agentview": rng.integers(0, 255, (224, 224, 3), dtype=np.uint8),
        "wrist": rng.integers(0, 255, (224, 224, 3), dtype=np.uint8),
        "state": rng.normal(size=state_dim).astype(np.float32),
    }


def _client(uri: str, seconds: float, seed: int, results: multiprocessing.Queue) -> None:
    """One client process: requests for `seconds` seconds; (requests, batch sizes seen)."""
    from robopolicy.client import PolicyClient

    rng = np.random.default_rng(seed)
    with PolicyClient(uri) as client:
        request = _request(rng, int(client.metadata["state_dim"]))
        client.infer(request)
        n, batches = 0, []
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            reply = client.infer(request)
            batches.append(reply["server_timing"]["batch"])
            n += 1
    results.put((n, batches))


class Server:
    """`robopolicy serve` in another process, on a free port."""

    def __init__(self, run: str, max_clients: int) -> None:
        command = [sys.executable, "-m", "robopolicy.cli", "serve", "--policy", run, "--port", "0"]
        command += ["--max-clients", str(max_clients), "--execution.mode", "every_step"]
        self.proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        line = self.proc.stdout.readline()
        if "serving" not in line:
            raise RuntimeError(f"the server did not start: {line!r}")
        self.uri = line.split(" on ")[1].split()[0]

    def stop(self) -> dict:
        self.proc.terminate()
        out, _ = self.proc.communicate(timeout=60)
        return json.loads(out.strip().splitlines()[-1])


def percentiles(ms: list[float]) -> dict[str, float]:
    return {f"p{q}": round(float(np.percentile(ms, q)), 2) for q in (50, 95, 99)}


def overhead(run: str, requests: int) -> dict:
    from robopolicy.client import PolicyClient
    from robopolicy.data.image_resize import resize_with_pad
    from robopolicy.eval.execution import ExecutionSettings
    from robopolicy.eval.policy_runner import PolicyRunner
    from robopolicy.train.loaded_policy import load_policy

    policy = load_policy(run)
    size = policy.config.image_size
    rng = np.random.default_rng(0)
    request = _request(rng, policy.config.state_dim)
    small = {k: resize_with_pad(v, size, size) if v.ndim == 3 else v for k, v in request.items()}
    runner = PolicyRunner(policy, execution=ExecutionSettings(mode="every_step"))
    in_process, resize = [], []
    for i in range(requests + 20):
        t0 = time.perf_counter()
        runner.act(small)
        t1 = time.perf_counter()
        resize_with_pad(np.stack([request["agentview"], request["wrist"]]), size, size)
        t2 = time.perf_counter()
        if i >= 20:
            in_process.append((t1 - t0) * 1e3)
            resize.append((t2 - t1) * 1e3)
    server = Server(run, max_clients=1)
    rtt, infer = [], []
    with PolicyClient(server.uri) as client:
        for i in range(requests + 20):
            t0 = time.perf_counter()
            reply = client.infer(request)
            t1 = time.perf_counter()
            if i >= 20:
                rtt.append((t1 - t0) * 1e3)
                infer.append(reply["server_timing"]["infer_ms"])
    summary = server.stop()
    added = [r - i for r, i in zip(rtt, infer, strict=True)]
    return {
        "policy": policy.where,
        "image_size": size,
        "in_process_ms": percentiles(in_process),
        "resize_two_224_ms": percentiles(resize),
        "round_trip_ms": percentiles(rtt),
        "server_policy_call_ms": percentiles(infer),
        "added_by_serving_ms": percentiles(added),
        "p50_round_trip_minus_p50_in_process_ms": round(float(np.median(rtt) - np.median(in_process)), 2),
        "server_summary": summary,
    }


def throughput(run: str, clients: int, max_clients: int, seconds: float) -> dict:
    server = Server(run, max_clients=max_clients)
    ctx = multiprocessing.get_context("spawn")
    results = ctx.Queue()
    procs = [ctx.Process(target=_client, args=(server.uri, seconds, i, results)) for i in range(clients)]
    for p in procs:
        p.start()
    done = [results.get(timeout=seconds + 120) for _ in procs]
    for p in procs:
        p.join()
    server.stop()
    total = sum(n for n, _ in done)
    batches = [b for _, bs in done for b in bs]
    return {
        "clients": clients,
        "max_clients": max_clients,
        "requests_per_s": round(total / seconds, 1),
        "mean_batch": round(float(np.mean(batches)), 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", default="runs/quickstart/train", help="a training run or bundle to serve")
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--seconds", type=float, default=15.0)
    args = parser.parse_args()
    if not Path(args.run).exists():
        sys.exit(f"{args.run}: no such run; train one (robopolicy quickstart) or pass --run")
    from machine import machine_line

    result = {"machine": machine_line(), "overhead": overhead(args.run, args.requests), "throughput": []}
    for clients, max_clients in ((1, 1), (1, 4), (2, 4), (4, 4)):
        result["throughput"].append(throughput(args.run, clients, max_clients, args.seconds))
    print(json.dumps(result))
    o = result["overhead"]
    print(f"\n{result['machine']} · policy {o['policy']} ({o['image_size']}×{o['image_size']} inputs)\n")
    print("| per request, ms | p50 | p95 | p99 |\n|---|---|---|---|")
    for name, key in [
        ("in process: `PolicyRunner.act`", "in_process_ms"),
        ("resize of two 224×224 images", "resize_two_224_ms"),
        ("server: its policy call", "server_policy_call_ms"),
        ("client: round trip", "round_trip_ms"),
        ("added by serving (round trip − server's call)", "added_by_serving_ms"),
    ]:
        p = o[key]
        print(f"| {name} | {p['p50']} | {p['p95']} | {p['p99']} |")
    print("\n| clients | max clients (rows per call) | requests/s | mean batch |\n|---|---|---|---|")
    for t in result["throughput"]:
        print(f"| {t['clients']} | {t['max_clients']} | {t['requests_per_s']} | {t['mean_batch']} |")


if __name__ == "__main__":
    main()
