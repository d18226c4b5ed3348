"""Checkpoints: the one place they are named, found, saved, loaded, averaged and resolved.

Training writes them, decoding and export read them; neither needs the other::

    from auden.checkpoint import CheckpointSpec, load_model, resolve_checkpoint
    model = load_model(resolve_checkpoint("exp/t", CheckpointSpec(iter=400, avg=2)))
"""

from auden.checkpoint.average import (
    RunningAverage,
    average_running_models,
    average_state_dicts,
    has_running_average,
)
from auden.checkpoint.files import (
    describe_checkpoints,
    epoch_checkpoint_path,
    find_checkpoints,
    find_epoch_checkpoints,
    iter_checkpoint_path,
    remove_old_checkpoints,
    remove_temp_files,
    stored_checkpoint,
)
from auden.checkpoint.resolve import (
    CheckpointSpec,
    MissingCheckpointsError,
    averaged_filename,
    load_model,
    resolve_checkpoint,
)
from auden.checkpoint.sharded import (
    load_sharded_into,
    load_sharded_meta,
    save_sharded_checkpoint,
)
from auden.checkpoint.storage import load_checkpoint, save_checkpoint
from auden.checkpoint.trainable import (
    load_trainable_state_dict,
    trainable_keys,
    trainable_state_dict,
)

__all__ = [
    "CheckpointSpec",
    "MissingCheckpointsError",
    "RunningAverage",
    "average_running_models",
    "average_state_dicts",
    "averaged_filename",
    "describe_checkpoints",
    "epoch_checkpoint_path",
    "find_checkpoints",
    "find_epoch_checkpoints",
    "has_running_average",
    "iter_checkpoint_path",
    "load_checkpoint",
    "load_model",
    "load_sharded_into",
    "load_sharded_meta",
    "load_trainable_state_dict",
    "remove_old_checkpoints",
    "remove_temp_files",
    "resolve_checkpoint",
    "save_checkpoint",
    "save_sharded_checkpoint",
    "stored_checkpoint",
    "trainable_keys",
    "trainable_state_dict",
]
