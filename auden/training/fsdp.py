"""FSDP2 for ``trainer.strategy=fsdp``: each rank holds a shard of every parameter.

Every transformer block of the LLM (and of the encoder, when the encoder trains) becomes
one FSDP unit, gathered just before it runs and freed after; the rest of the model
(embeddings, projector, heads, a frozen encoder) is the root unit::

    shard_model(model, param_dtype=torch.bfloat16)   # before the optimizer is built
    optimizer = build_optimizer(model.named_parameters(), cfg)

LoRA adapters are parameters of the blocks they adapt, so they are sharded with them.
FSDP2 cannot shard a scalar parameter (Zipformer's learnt scales): those stay whole on
every rank, outside FSDP, and their gradients are averaged by hand
(:func:`auden.training.distributed.average_gradients`) before each optimizer step.
"""

from __future__ import annotations

import logging

import torch
from torch import nn

logger = logging.getLogger(__name__)


def transformer_blocks(module: nn.Module) -> list[nn.Module]:
    """The repeated blocks of ``module``: the items of its innermost ``nn.ModuleList``\\ s.

    A decoder's ``layers`` (Qwen2DecoderLayer), a Whisper encoder's ``layers``, a
    Zipformer stack's ``blocks``; a list that holds lists (Zipformer's ``stacks``) is
    not a list of blocks itself.
    """
    blocks = []
    for sub in module.modules():
        if isinstance(sub, nn.ModuleList) and not any(
            isinstance(m, nn.ModuleList) for item in sub for m in item.modules()
        ):
            blocks.extend(item for item in sub if any(True for _ in item.parameters()))
    return blocks


def _trains(module: nn.Module) -> bool:
    return any(p.requires_grad for p in module.parameters())


def shard_model(model: nn.Module, param_dtype: torch.dtype | None) -> list[nn.Parameter]:
    """``fully_shard`` the LLM's blocks, a trained encoder's blocks, then the whole model.

    ``param_dtype`` (``trainer.dtype``; None for float32) is what the gathered weights
    compute in; gradients are reduced, and the optimizer keeps its shards, in float32.
    Returns the parameters left whole (scalars), whose gradients the caller averages.
    """
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

    policy = MixedPrecisionPolicy(param_dtype=param_dtype, reduce_dtype=torch.float32)
    whole = [p for p in model.parameters() if p.dim() == 0]
    units: list[nn.Module] = []
    llm = getattr(model, "llm", None)
    if llm is not None:
        units += transformer_blocks(llm)
    encoder = getattr(model, "audio_encoder", None)
    if encoder is not None and _trains(encoder):
        units += transformer_blocks(encoder)
    for unit in [*units, model]:
        fully_shard(unit, mp_policy=policy, ignored_params=set(whole))
    logger.info("FSDP2: %d blocks sharded as units of their own, the rest as the root "
                "unit; %d scalar parameters whole on every rank", len(units), len(whole))
    return whole


def grad_norm_and_clip(params: list[nn.Parameter], max_norm: float) -> float:
    """Clip to ``max_norm`` the gradients' total norm over all ranks' shards; return it.

    Without sharded gradients this is ``clip_grad_norm_``; with them, the norm of each
    rank's shards (DTensors) is reduced over ranks, and whole gradients join it as they are.
    """
    from torch.distributed.tensor import DTensor

    grads = [p.grad for p in params if p.grad is not None]
    sharded = [g for g in grads if isinstance(g, DTensor)]
    if not sharded:
        return float(torch.nn.utils.clip_grad_norm_(params, max_norm))
    whole = [g for g in grads if not isinstance(g, DTensor)]
    norms = [torch.nn.utils.get_total_norm(sharded).full_tensor()]
    if whole:
        norms.append(torch.nn.utils.get_total_norm(whole))
    total = torch.linalg.vector_norm(torch.stack(norms))
    coef = float(torch.clamp(max_norm / (total + 1e-6), max=1.0))
    for g in grads:
        g.mul_(coef)
    return float(total)
