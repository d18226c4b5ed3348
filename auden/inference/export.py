"""Turn a training run's checkpoints into a self-contained Hugging Face style folder.

The folder (``config.json``, ``model.safetensors``, tokenizer) loads with
``AutoModel.from_pretrained`` without the experiment directory or the pretrained parts
the run started from, which is what users share and what the pipeline loads::

    export_model("exp/audio_llm", CheckpointSpec(iter=400, avg=2), "exp/audio_llm/export")
"""

from __future__ import annotations

import logging
from pathlib import Path

from auden.checkpoint import CheckpointSpec, load_model, resolve_checkpoint

logger = logging.getLogger(__name__)


def export_model(exp_dir: str | Path, spec: CheckpointSpec, out_dir: str | Path) -> Path:
    """Resolve (and average, once) the checkpoint ``spec`` names, then save the model."""
    checkpoint = resolve_checkpoint(exp_dir, spec)
    model = load_model(checkpoint)
    out = model.save_pretrained(out_dir)
    logger.info("exported %s to %s", checkpoint, out_dir)
    return Path(out or out_dir)
