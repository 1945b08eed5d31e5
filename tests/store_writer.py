"""Process body for the concurrent-writer test; imports only the store so that spawning is quick."""


def write_episodes(db: str, worker: int, count: int) -> None:
    """Process body for the concurrent-writer test: register the shared run, then store `count` episodes."""
    from robopolicy.eval.results_store import EpisodeKey, EpisodeRecord, ResultsStore

    with ResultsStore(db) as store:
        run_id = store.register_run("policy", 1, {"mode": "chunk"}, "hash")
        for i in range(count):
            key = EpisodeKey("cube_on_plate", worker * 1000 + i, 0)
            store.mark_running(run_id, key, "", worker)
            store.record(
                run_id, EpisodeRecord(key.task, key.init_state_id, 0, i % 2 == 0, 10, None, 0.1), worker
            )
