"""Remote policies in evaluation: `robopolicy eval --policy ws://…` against an openpi-style server, and
end to end, a policy served from another process evaluated through the same episode loop with the
same outcomes (and videos) as in process, in one sweep with the checkpoint itself."""

import asyncio
import dataclasses
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading

import imageio.v3 as iio
import numpy as np
import pytest
import websockets.asyncio.server
from eval_fixtures import TINY_POLICY, make_checkpoint
from openpi_client import msgpack_numpy

from robopolicy.cli import main
from robopolicy.eval.results_store import ResultsStore

HISTORY_POLICY = dataclasses.replace(TINY_POLICY, obs_horizon=2, action_horizon=5, n_action_steps=2)


class OpenpiStyleServer:
    """A stand-in for an openpi policy server: empty metadata, a chunk of 10 small actions per request,
    and a record of what each request held."""

    def __init__(self) -> None:
        self.requests: list[dict] = []
        ready = threading.Event()

        async def handler(ws):
            await ws.send(msgpack_numpy.packb({}))
            async for message in ws:
                obs = msgpack_numpy.unpackb(message)
                self.requests.append(obs)
                actions = np.tile(np.array([0.01, 0, 0, 0, 0, 0, -1], np.float32), (10, 1))
                await ws.send(msgpack_numpy.packb({"actions": actions, "policy_timing": {"infer_ms": 1.0}}))

        async def serve():
            self._stop = asyncio.get_running_loop().create_future()
            async with websockets.asyncio.server.serve(handler, "127.0.0.1", 0, compression=None) as server:
                self.uri = f"ws://127.0.0.1:{next(iter(server.sockets)).getsockname()[1]}"
                self._loop = asyncio.get_running_loop()
                ready.set()
                await self._stop

        self._thread = threading.Thread(target=lambda: asyncio.run(serve()), daemon=True)
        self._thread.start()
        assert ready.wait(30)

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._stop.set_result, None)
        self._thread.join(10)


def test_eval_drives_an_openpi_style_server(tmp_path, capsys):
    server = OpenpiStyleServer()
    try:
        db = str(tmp_path / "openpi.db")
        args = ["eval", "--policy", server.uri, "--tasks", "cube_on_plate", "--init-states", "0:2"]
        args += ["--execution.max-steps", "12", "--execution.n-action-steps", "5", "--db", db]
        args += ["--video-episodes", "0", "--backend", "local"]
        assert main(args) == 2  # no observation mapping: the server names none
        assert main([*args, "--obs-mapping", "openpi_libero", "--execution.mode", "temporal_ensemble"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 2 and "--obs-mapping" in err[0] and "chunk and every_step" in err[1]
        assert not server.requests
        assert main([*args, "--obs-mapping", "openpi_libero"]) == 0
    finally:
        server.stop()
    out = capsys.readouterr().out
    assert "0/2" in out and f"{server.uri[5:]}@0" in out
    assert len(server.requests) == 2 * 3  # 12 steps, a new chunk every 5 actions, 2 episodes
    first = server.requests[0]
    assert set(first) == {"observation/image", "observation/wrist_image", "observation/state", "prompt"}
    assert first["observation/image"].shape == (224, 224, 3) and first["observation/image"].dtype == np.uint8
    assert (
        first["observation/state"].shape == (9,) and first["prompt"] == "put the red cube on the blue plate"
    )
    with ResultsStore(db) as store:
        episodes = store.episodes()
    assert [e["steps"] for e in episodes] == [12, 12] and all(e["policy_seconds"] > 0 for e in episodes)


@pytest.fixture
def served(tmp_path):
    """`robopolicy serve` of a tiny policy with history (To = 2), in another process."""
    run_dir = make_checkpoint(tmp_path / "run", config=HISTORY_POLICY)
    command = ["serve", "--policy", str(run_dir), "--port", "0", "--max-clients", "2"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "robopolicy.cli", *command],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        line = proc.stdout.readline()
        assert "serving" in line, line
        yield run_dir, line.split(" on ")[1].split()[0], proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _episodes(db):
    with ResultsStore(db) as store:
        runs = {r.run_id: r for r in store.runs()}
        by_run: dict[str, dict] = {}
        for e in store.episodes():
            key = (e["task"], e["init_state_id"], e["seed"])
            by_run.setdefault(runs[e["run_id"]].policy, {})[key] = e
    return by_run


def test_served_policy_evaluates_like_the_checkpoint(served, tmp_path, capsys):
    run_dir, uri, proc = served
    (tmp_path / "sweep.toml").write_text(
        textwrap.dedent(f"""
        db = "results.db"
        checkpoints = ["{run_dir}", "{uri}"]
        tasks = ["cube_on_plate"]
        init_states = "0:3"
        seeds = [0, 1]
        backend = "vector"
        num_envs = 2
        video_episodes = 1
        [[settings]]
        max_steps = 8
        settle_steps = 2
        """)
    )
    assert main(["sweep", "--config", str(tmp_path / "sweep.toml")]) == 0
    db = tmp_path / "results.db"
    local, remote = (_episodes(db)[k] for k in sorted(_episodes(db)))
    assert len(local) == len(remote) == 6
    for key, e in local.items():
        r = remote[key]
        assert (e["success"], e["steps"], e["failure_reason"]) == (
            r["success"],
            r["steps"],
            r["failure_reason"],
        )
    # Same actions, same trajectories: the filmed episodes are the same frames.
    videos = sorted((tmp_path / "videos").glob("*.mp4"))
    assert len(videos) == 4
    for a, b in zip(videos[:2], videos[2:], strict=True):
        np.testing.assert_array_equal(iio.imread(a), iio.imread(b))
    # `robopolicy eval --policy ws://…` with the same settings is the same run: nothing left to do.
    args = ["eval", "--policy", uri, "--init-states", "0:3", "--seeds", "0", "1", "--db", str(db)]
    assert (
        main([*args, "--execution.max-steps", "8", "--execution.settle-steps", "2", "--num-envs", "2"]) == 0
    )
    captured = capsys.readouterr()
    assert "6 already in" in captured.err and uri[5:] in captured.out
    assert main(["compare", "1", "2", "--db", str(db)]) == 0
    assert "shared episodes (same task, initial state, seed): 6" in capsys.readouterr().out
    # The server's execution settings are its own.
    assert main([*args, "--execution.mode", "every_step"]) == 2
    assert "robopolicy serve --execution" in capsys.readouterr().err
    # SIGTERM: the server stops and prints its latency percentiles.
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["event"] == "shutdown" and summary["errors"] == 0
    assert summary["requests"] == sum(e["steps"] for e in remote.values())  # one request per policy step
    assert {"p50", "p95", "p99"} <= set(summary["latency_ms"])
    # A server that is gone: one line, nothing recorded.
    assert main([*args, "--db", str(tmp_path / "gone.db")]) == 2
    assert "cannot reach a policy server" in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "gone.db")
