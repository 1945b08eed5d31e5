"""The policy server: openpi's real client gets the in-process actions, each connection keeps its
episode, bad requests get error replies and the server stays up, tokens, health, timeouts, shutdown."""

import dataclasses
import json
import socket
import threading
import urllib.request

import numpy as np
import pytest
import websockets.sync.client
from eval_fixtures import TINY_POLICY, make_checkpoint
from openpi_client import msgpack_numpy
from openpi_client.websocket_client_policy import WebsocketClientPolicy
from serve_fixtures import ServerThread, observation

from robopolicy.cli import main
from robopolicy.client import PolicyClient, ServerError, packb
from robopolicy.data.image_resize import resize_with_pad
from robopolicy.eval.execution import ExecutionSettings
from robopolicy.eval.policy_runner import PolicyRunner
from robopolicy.serve.requests import Request
from robopolicy.serve.sessions import Sessions
from robopolicy.train.loaded_policy import load_policy

HISTORY_POLICY = dataclasses.replace(
    TINY_POLICY, obs_horizon=2, action_horizon=5, n_action_steps=2, past_steps=1
)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return make_checkpoint(tmp_path_factory.mktemp("serve") / "run")


@pytest.fixture(scope="module")
def history_dir(tmp_path_factory):
    return make_checkpoint(tmp_path_factory.mktemp("history") / "run", config=HISTORY_POLICY)


@pytest.fixture(scope="module")
def openpi_server(run_dir, tmp_path_factory):
    log = tmp_path_factory.mktemp("log") / "requests.jsonl"
    with ServerThread(run_dir, obs_mapping="openpi_libero", seed=3, request_log=str(log)) as server:
        server.log = log
        yield server


def _openpi_obs(rng, size=224):
    obs = observation(rng, size)
    return {
        "observation/image": obs["agentview"],
        "observation/wrist_image": obs["wrist"],
        "observation/state": obs["state"],
        "prompt": "put the red cube on the blue plate",
    }


def _as_policy_input(openpi_obs):
    """What the server makes of an openpi request: the policy's cameras at its size, the state."""
    return {
        "agentview": resize_with_pad(openpi_obs["observation/image"], 16, 16),
        "wrist": resize_with_pad(openpi_obs["observation/wrist_image"], 16, 16),
        "state": openpi_obs["observation/state"],
    }


def test_openpi_client_gets_the_in_process_actions(openpi_server, run_dir):
    policy = load_policy(run_dir)
    rng = np.random.default_rng(0)
    client = WebsocketClientPolicy(openpi_server.uri)
    meta = client.get_server_metadata()
    assert meta["server"] == "robopolicy" and meta["cameras"] == ["agentview", "wrist"]
    assert meta["obs_mapping"]["cameras"] == {
        "observation/image": "agentview",
        "observation/wrist_image": "wrist",
    }
    # The server's seed, then an explicit one; each reply is a chunk of n_action_steps = 2 actions, which
    # the openpi client executes in full before asking again (the server's assumption).
    for start in ({}, {"reset": True, "seed": 11}):
        runner = PolicyRunner(policy, seed=start.get("seed", 3))
        for k in range(3):
            obs = _openpi_obs(rng)
            reply = client.infer({**obs, **(start if k == 0 else {})})
            expected = [runner.act(_as_policy_input(obs)) for _ in range(2)]
            assert reply["actions"].shape == (2, 7) and reply["actions"].dtype == np.float32
            np.testing.assert_allclose(reply["actions"], np.stack(expected), atol=1e-5)
            assert reply["step"] == 2 * k and reply["planned"]
    # A malformed request is answered with an error text (openpi's client raises it); the connection
    # and its episode stay as they were.
    with pytest.raises(RuntimeError, match="observation/wrist_image"):
        client.infer({k: v for k, v in obs.items() if k != "observation/wrist_image"})
    obs = _openpi_obs(rng)
    np.testing.assert_allclose(client.infer(obs)["actions"][0], runner.act(_as_policy_input(obs)), atol=1e-5)


def test_connections_keep_their_own_episodes(openpi_server, run_dir):
    policy = load_policy(run_dir)
    seeds = (5, 6, 7)
    results: dict[int, list] = {}
    observations = {s: [_openpi_obs(np.random.default_rng(s)) for _ in range(4)] for s in seeds}

    def episode(seed):
        with PolicyClient(openpi_server.uri) as client:
            client.reset(seed)
            results[seed] = [client.infer(o)["actions"] for o in observations[seed]]

    threads = [threading.Thread(target=episode, args=(s,)) for s in seeds]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for seed in seeds:
        runner = PolicyRunner(policy, seed=seed)
        for obs, got in zip(observations[seed], results[seed], strict=True):
            expected = [runner.act(_as_policy_input(obs)) for _ in range(2)]
            np.testing.assert_allclose(got, np.stack(expected), atol=1e-5)
    lines = [json.loads(line) for line in openpi_server.log.read_text().splitlines()]
    assert lines and all({"latency_ms", "client", "slot"} <= set(line) for line in lines)


def _request(obs, **control):
    return Request(obs, None, control.get("reset", False), control.get("seed"), control.get("executed"))


def test_step_by_step_with_executed_actions_is_the_in_process_selector(history_dir):
    """A client that sends every step and reports the action it executed gets, for a policy with history
    and self-verification, exactly what the in-process runner does."""
    policy = load_policy(history_dir)
    settings = ExecutionSettings(n_action_steps=2, self_verify_candidates=3)
    sessions = Sessions(policy, settings, max_clients=5, seed=0)
    # Each call computes as many rows as sessions ask at once, rounded up to a power of two.
    assert [sessions.selector.batch_rows(n) for n in range(1, 6)] == [1, 2, 4, 4, 5]
    session = sessions.open()
    runner = PolicyRunner(policy, seed=9, execution=settings)
    rng = np.random.default_rng(1)
    executed = None
    for t in range(6):
        obs = observation(rng)
        control = {"reset": True, "seed": 9} if t == 0 else {"executed": executed[None]}
        (reply,) = sessions.step([(session, _request(obs, **control))])
        np.testing.assert_allclose(reply.actions[0], runner.act(obs), atol=1e-5)
        assert reply.step == t
        executed = reply.actions[0]


def test_unseen_steps_hold_the_last_observation(history_dir):
    """A chunk client that asks only when its actions run out: the steps it did not send count with the
    previous observation (To = 2 here), and the server assumes every sent action was executed."""
    policy = load_policy(history_dir)
    sessions = Sessions(policy, ExecutionSettings(), max_clients=1, seed=4)
    session = sessions.open()
    runner = PolicyRunner(policy, seed=4)
    rng = np.random.default_rng(2)
    for k in range(3):
        obs = observation(rng)
        (reply,) = sessions.step([(session, _request(obs))])
        assert len(reply.actions) == 2 and reply.step == 2 * k
        expected = [runner.act(obs) for _ in range(2)]  # the same observation, held for the unseen step
        np.testing.assert_allclose(reply.actions, np.stack(expected), atol=1e-5)
    # Reporting fewer executed actions than were sent: the queue goes on from there, no new plan.
    obs = observation(rng)
    (first,) = sessions.step([(session, _request(obs))])
    (second,) = sessions.step([(session, _request(observation(rng), executed=first.actions[:1]))])
    np.testing.assert_allclose(second.actions, first.actions[1:], atol=1e-6)
    assert not second.planned
    (bad,) = sessions.step([(session, _request(obs, executed=np.zeros((3, 7), np.float32)))])
    assert "previous reply sent 1" in str(bad)


def test_bad_requests_get_error_replies_and_change_nothing(openpi_server, run_dir):
    policy = load_policy(run_dir)
    rng = np.random.default_rng(3)
    good = _openpi_obs(rng)
    nan_state = dict(good, **{"observation/state": np.full(9, np.nan, np.float32)})
    cases = {
        "missing key": {k: v for k, v in good.items() if k != "observation/state"},
        "wrong dtype": dict(good, **{"observation/image": good["observation/image"].astype(np.float32)}),
        "wrong shape": dict(good, **{"observation/state": np.zeros(4, np.float32)}),
        "NaN": nan_state,
        "oversized image": dict(good, **{"observation/image": np.zeros((2049, 8, 3), np.uint8)}),
        "bad seed": dict(good, reset=True, seed="nine"),
        "too many executed": dict(good, executed_actions=np.zeros((5, 7), np.float32)),
        "not a map": [1, 2, 3],
    }
    with websockets.sync.client.connect(openpi_server.uri, max_size=None) as ws:
        ws.recv()  # metadata
        ws.send(msgpack_numpy.packb({**good, "reset": True, "seed": 1}))
        first = msgpack_numpy.unpackb(ws.recv())["actions"]
        for name, bad in cases.items():
            ws.send(msgpack_numpy.packb(bad))
            reply = ws.recv()
            assert isinstance(reply, str) and reply.startswith("robopolicy server: "), name
        for garbage in (b"\xc1", b"", "a text frame"):
            ws.send(garbage)
            assert isinstance(ws.recv(), str)
        obs = _openpi_obs(rng)
        ws.send(msgpack_numpy.packb(obs))
        runner = PolicyRunner(policy, seed=1)
        expected = [runner.act(_as_policy_input(good)) for _ in range(2)] + [
            runner.act(_as_policy_input(obs))
        ]
        np.testing.assert_allclose(first, np.stack(expected[:2]), atol=1e-5)
        np.testing.assert_allclose(msgpack_numpy.unpackb(ws.recv())["actions"][0], expected[2], atol=1e-5)


def _malformed(rng, good):
    """One seeded malformed message (bytes or text), of a kind drawn at random."""
    kind = int(rng.integers(9))
    packed = msgpack_numpy.packb(good)
    key = list(good)[int(rng.integers(len(good)))]
    if kind == 0:  # random bytes, or a text frame
        return rng.bytes(int(rng.integers(0, 200))) if rng.random() < 0.9 else "text"
    if kind == 1:  # a valid message cut short
        return packed[: int(rng.integers(1, len(packed)))]
    if kind == 2:  # a valid message with bytes of its structure (before the first image's data) flipped
        data = bytearray(packed)
        for i in rng.integers(0, 40, 3):
            data[i] ^= 0xFF
        return bytes(data)
    if kind == 3:  # a key missing
        return msgpack_numpy.packb({k: v for k, v in good.items() if k != key})
    if kind == 4:  # a value of another type
        values = [None, 1.5, [1, 2], {"a": 1}, True, b"raw", np.zeros((2, 2), np.int64)]
        key = key if key != "prompt" else "observation/state"
        return msgpack_numpy.packb({**good, key: values[int(rng.integers(len(values)))]})
    if kind == 5:  # an array map whose data does not fit its shape and dtype
        array = {b"__ndarray__": True, b"data": rng.bytes(7), b"dtype": "<f4", b"shape": [3, 3]}
        return packb({**good, key: array})
    if kind == 6:  # a refused or unknown dtype, or a shape that is not one
        dtype = ["|O", "<c8", "|V8", "nonsense", "(2,)<f4"][int(rng.integers(5))]
        shape = [[2], [-1, 2], "2", [2**40, 2**40]][int(rng.integers(4))]
        return packb(
            {**good, key: {b"__ndarray__": True, b"data": b"\0" * 16, b"dtype": dtype, b"shape": shape}}
        )
    if kind == 7:  # NaN or infinity in the state
        bad = [np.nan, np.inf, -np.inf][int(rng.integers(3))]
        return msgpack_numpy.packb({**good, "observation/state": np.full(9, bad, np.float32)})
    return packb(
        {**good, "executed_actions": rng.normal(size=(int(rng.integers(3, 9)), 7)).astype(np.float32)}
    )


def test_fuzzed_requests_never_bring_the_server_down(run_dir):
    policy = load_policy(run_dir)
    rng = np.random.default_rng(1234)
    good = _openpi_obs(rng, size=16)
    with ServerThread(run_dir, obs_mapping="openpi_libero", max_message_mb=0.5) as server:
        ws = websockets.sync.client.connect(server.uri, max_size=None)
        ws.recv()
        ws.send(msgpack_numpy.packb(good))  # an episode in progress: executed_actions can be too many
        assert isinstance(ws.recv(), bytes)
        errors = sent = 0
        while errors < 220 and sent < 400:
            ws.send(_malformed(rng, good))
            sent += 1
            errors += isinstance(ws.recv(timeout=30), str)
        assert errors == 220 and sent < 240  # a rare flip leaves a message valid
        # Oversized: the connection is closed (1009), the server goes on.
        ws.send(b"\0" * (600 * 1024))
        with pytest.raises(websockets.exceptions.ConnectionClosed) as closed:
            ws.recv(timeout=30)
        assert closed.value.rcvd.code == 1009
        # Clients that disconnect halfway through a handshake or a message.
        with socket.create_connection(("127.0.0.1", server.port)) as raw:
            raw.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n")
        with socket.create_connection(("127.0.0.1", server.port)) as raw:
            raw.sendall(rng.bytes(50))
        half = websockets.sync.client.connect(server.uri)
        half.recv()
        half.socket.sendall(b"\x82\xfe\x10\x00" + b"\0\0\0\0" + b"x" * 100)  # a 4096-byte frame, cut short
        half.socket.shutdown(socket.SHUT_RDWR)
        with PolicyClient(server.uri) as client:
            client.reset(seed=2)
            reply = client.infer(good)
        expected = PolicyRunner(policy, seed=2).act(_as_policy_input(good))
        np.testing.assert_allclose(reply["actions"][0], expected, atol=1e-5)
    summary = server.server.latencies.summary()
    assert summary["requests"] == sent + 2 and summary["errors"] == 220


def test_token_health_full_server_timeout_and_shutdown_summary(run_dir):
    rng = np.random.default_rng(5)
    with ServerThread(run_dir, token="s3cret", max_clients=1) as server:
        health = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{server.port}/healthz").read())
        assert health["status"] == "ok" and health["max_clients"] == 1
        for token in ("", "wrong"):
            with pytest.raises(websockets.exceptions.InvalidStatus, match="401"):
                PolicyClient(server.uri, token=token)
        with (
            PolicyClient(server.uri, token="s3cret") as first,
            PolicyClient(server.uri, token="s3cret") as second,
        ):
            first.infer(observation(rng))
            with pytest.raises(ServerError, match="server full"):
                second.infer(observation(rng))
    with ServerThread(run_dir, request_timeout_s=1e-6) as server:
        with PolicyClient(server.uri) as client, pytest.raises(ServerError, match="timed out"):
            client.infer(observation(rng))
        summary = server.stop()
    assert (
        summary["requests"] == 1 and summary["errors"] == 1 and set(summary["latency_ms"]) >= {"p50", "p99"}
    )


def test_serve_errors_are_one_line(run_dir, tmp_path, capsys):
    assert main(["serve", "--policy", str(run_dir), "--obs-mapping", "nope"]) == 2
    (tmp_path / "m.toml").write_text('cameras = { "img" = "agentview" }\n')
    assert main(["serve", "--policy", str(run_dir), "--obs-mapping", str(tmp_path / "m.toml")]) == 2
    with ServerThread(run_dir) as server:
        assert main(["serve", "--policy", str(run_dir), "--port", str(server.port)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and "nope" in err[0] and "wrist" in err[1] and "cannot listen" in err[2]
