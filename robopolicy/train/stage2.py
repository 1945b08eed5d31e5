"""Multistage long-context training (Past-Token Prediction), the training side.

Stage 1 is an ordinary run, or DynaMo pretraining (`--encoder` then names the DynaMo checkpoint).
For stage 2, `robopolicy train --preset ptp_stage2 --encoder RUN --dataset D` embeds every frame of
D once with RUN's EMA encoder (or reuses the cache written earlier next to D, `D_embeddings`, when it
came from the same checkpoint) and trains the `encoder="cached"` head on the embeddings; the encoder
stays frozen because it is not in the model. The run's metadata names the stage-1 checkpoint, so
evaluation composes encoder and head.
"""

from __future__ import annotations

from typing import Any

from robopolicy.data.embedding_cache import default_out, load_embedding_episodes, read_embedding_source
from robopolicy.data.episode import Episode
from robopolicy.errors import UserError
from robopolicy.paths import storage_path
from robopolicy.train import checkpoint
from robopolicy.train.cache_embeddings import CacheEmbeddingsConfig, cache_embeddings
from robopolicy.train.train_config import TrainConfig

STAGE1_KEY = "stage1_encoder"  # meta key: {"checkpoint": step folder, "policy_config": {...}}


def embedding_episodes(config: TrainConfig, progress: bool = True) -> tuple[list[Episode], dict[str, Any]]:
    """The embedded episodes of `config.dataset` under `config.encoder`, and the stage-1 record for meta."""
    if config.policy.encoder != "cached":
        raise UserError(
            f"--encoder {config.encoder}: needs a policy with encoder='cached' (e.g. --preset ptp_stage2), "
            f"this one has encoder={config.policy.encoder!r}"
        )
    directory, step, _ = checkpoint.load_meta(config.encoder)
    step_dir = str(directory / str(step))
    cache = default_out(config.dataset)
    if cache.exists() and any(cache.rglob("dataset_info.json")):
        source = read_embedding_source(cache)
        made_by = str(storage_path(source["encoder_checkpoint"]) / str(source["encoder_step"]))
        if made_by != step_dir:
            raise UserError(
                f"{cache}: embeddings were made by {made_by}, not by --encoder {step_dir}; remove the cache"
            )
    else:
        cache_embeddings(CacheEmbeddingsConfig(encoder=config.encoder, dataset=config.dataset), progress)
    encoder_config = read_embedding_source(cache)["policy_config"]
    return load_embedding_episodes(cache), {
        STAGE1_KEY: {"checkpoint": step_dir, "policy_config": encoder_config}
    }
