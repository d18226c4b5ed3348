"""Turn a training run's checkpoints into a self-contained Hugging Face style folder.

The folder (``config.json``, ``model.safetensors``, tokenizer, ``tasks.json``) loads with
``AutoModel.from_pretrained`` without the experiment directory or the pretrained parts
the run started from, which is what users share and what the pipeline loads::

    export_model("exp/audio_llm", CheckpointSpec(iter=400, avg=2), "exp/audio_llm/export")
"""

from __future__ import annotations

import logging
from pathlib import Path

from auden.checkpoint import CheckpointSpec, load_checkpoint, load_model, resolve_checkpoint
from auden.inference.tasks import TaskPrompts, tasks_of_run
from auden.types import AudioChatModel

logger = logging.getLogger(__name__)


def export_model(exp_dir: str | Path, spec: CheckpointSpec, out_dir: str | Path) -> Path:
    """Resolve (and average, once) the checkpoint ``spec`` names, then save the model.

    An audio LLM also gets ``tasks.json``: the tasks and prompts of its training data.
    The exported folder makes features as the model declares them (``model.features``);
    a run whose data settings said otherwise trained on other features, so it is refused.
    """
    checkpoint = resolve_checkpoint(exp_dir, spec)
    model = load_model(checkpoint)
    trained = (load_checkpoint(checkpoint).get("config") or {}).get("data") or {}
    try:
        if model.features is not None:  # None: a text LLM, which reads no audio
            model.features.check(
                kind=trained.get("feature"),
                num_mel_bins=trained.get("num_mel_bins"),
                pad_to_30s=trained.get("pad_to_30s"),
            )
    except ValueError as e:
        raise ValueError(f"cannot export '{checkpoint}', its run read other features: {e}") from None
    out = Path(model.save_pretrained(out_dir) or out_dir)
    if isinstance(model, AudioChatModel):  # what the pipeline serves: it needs the tasks
        train_config = load_checkpoint(checkpoint).get("config") or {}
        try:
            tasks = tasks_of_run(train_config, f"checkpoint '{checkpoint}'")
        except (OSError, ValueError) as e:
            logger.warning("%s; the exported model gets the 'transcribe' task only", e)
            tasks = TaskPrompts()
        tasks.save(out)
        logger.info("tasks of %s: %s", out, {k: v[0] for k, v in tasks.tasks.items()})
    logger.info("exported %s to %s", checkpoint, out)
    return out
