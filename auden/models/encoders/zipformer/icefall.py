"""icefall's Zipformer2 weights -> auden's ``flavor: icefall`` encoder (and its CTC head).

icefall (k2-fsa/icefall, ``egs/*/ASR/zipformer``) saves ``pretrained.pt`` as
``{"model": state_dict}`` with the front end under ``encoder_embed.``, the encoder under
``encoder.`` and the heads under ``decoder.``, ``joiner.``, ``simple_am_proj.``,
``simple_lm_proj.``, ``ctc_output.`` and ``attention_decoder.``. This module renames the
encoder's keys to auden's, infers the :class:`ZipformerConfig` from tensor shapes, and
keeps the CTC head when there is one. Reading and writing files is
:mod:`auden.checkpoint.icefall`'s job (``auden import-icefall``).

    config, encoder_state, ctc_head = convert_icefall_state(state_dict)
    encoder = ZipformerEncoder(config); encoder.load_state_dict(encoder_state)
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any

import torch

from auden.models.encoders.zipformer.config import ZipformerConfig

logger = logging.getLogger(__name__)

# Heads of icefall's models that an encoder import leaves behind.
DROPPED_PREFIXES = (
    "decoder.",
    "joiner.",
    "simple_am_proj.",
    "simple_lm_proj.",
    "attention_decoder.",
    "ctc_output.",
)
# icefall's default --pos-head-dim, the same in every released Zipformer recipe; no tensor
# shape shows it (it only multiplies the head count), so it must be assumed or given.
DEFAULT_POS_HEAD_DIM = 4

_FRONTEND = {
    "conv.0.": "conv1.",
    "conv.4.": "conv2.",
    "conv.7.": "conv3.",
    "convnext.depthwise_conv.": "convnext.depthwise.",
    "convnext.pointwise_conv1.": "convnext.pointwise1.",
    "convnext.pointwise_conv2.": "convnext.pointwise2.",
    "out.": "out.",
    "out_norm.": "norm.",
}
# Inside one Zipformer2EncoderLayer; the first matching prefix wins.
_LAYER = {
    "self_attn_weights.in_proj.": "attention_weights.in_proj.",
    "self_attn_weights.linear_pos.": "attention_weights.pos_proj.",
    "self_attn1.": "self_attention1.",
    "self_attn2.": "self_attention2.",
    "nonlin_attention.": "nonlin_attention.",
    "feed_forward1.": "feed_forward1.",
    "feed_forward2.": "feed_forward2.",
    "feed_forward3.": "feed_forward3.",
    "conv_module1.depthwise_conv.": "conv1.depthwise.",
    "conv_module2.depthwise_conv.": "conv2.depthwise.",
    "conv_module1.": "conv1.",
    "conv_module2.": "conv2.",
    "bypass_mid.bypass_scale": "bypass_mid.scale",
    "bypass.bypass_scale": "bypass.scale",
    "norm.": "norm.",
}
# icefall keeps a per-layer ``bypass_scale`` that its forward never reads ("TODO: remove").
_UNUSED_LAYER_KEYS = ("bypass_scale",)

_LAYER_KEY = re.compile(r"^encoder\.encoders\.(\d+)\.(?:encoder\.)?layers\.(\d+)\.(.+)$")
_STACK_KEY = re.compile(
    r"^encoder\.encoders\.(\d+)\.(downsample\.bias|out_combiner\.bypass_scale)$"
)
_CAUSAL_MARKERS = ("causal_conv.", "chunkwise_conv.")


class IcefallImportError(ValueError):
    """The checkpoint is not one auden can import (streaming, unknown keys, odd shapes)."""


@dataclass
class CtcHead:
    """icefall's ``ctc_output.1`` Linear: ``weight [V, D]``, ``bias [V]``, class 0 the blank."""

    weight: torch.Tensor
    bias: torch.Tensor


def _rename(key: str) -> str | None:
    """auden's name for one icefall encoder key; None for a key that is dropped."""
    if key.startswith("encoder_embed."):
        rest = key[len("encoder_embed.") :]
        for old, new in _FRONTEND.items():
            if rest.startswith(old):
                return "frontend." + new + rest[len(old) :]
        raise IcefallImportError(f"unknown icefall front-end key '{key}'")
    if key == "encoder.downsample_output.bias":
        return "output_downsample.logits"
    m = _STACK_KEY.match(key)
    if m:
        name = "downsample.logits" if m.group(2) == "downsample.bias" else "bypass.scale"
        return f"stacks.{m.group(1)}.{name}"
    m = _LAYER_KEY.match(key)
    if m:
        stack, layer, rest = m.groups()
        if rest in _UNUSED_LAYER_KEYS:
            return None
        for old, new in _LAYER.items():
            if rest.startswith(old):
                return f"stacks.{stack}.blocks.{layer}.{new}{rest[len(old) :]}"
    raise IcefallImportError(f"unknown icefall encoder key '{key}'")


def check_not_streaming(state: dict[str, torch.Tensor], params: dict[str, Any]) -> None:
    causal = [k for k in state if any(m in k for m in _CAUSAL_MARKERS)]
    if causal or str(params.get("causal", "")).lower() in ("true", "1"):
        evidence = f"key '{causal[0]}'" if causal else "params causal=True"
        raise IcefallImportError(
            f"this is a streaming (causal) icefall Zipformer ({evidence}); auden imports "
            "non-streaming checkpoints only (trained with --causal 0)"
        )


def _per_stack(params: dict[str, Any], name: str, n: int) -> tuple[int, ...] | None:
    """An icefall ``params`` entry such as ``"4,4,4,8,4,4"`` as one int per stack."""
    if name not in params:
        return None
    values = tuple(int(v) for v in str(params[name]).split(","))
    return values * n if len(values) == 1 else values


def infer_config(
    state: dict[str, torch.Tensor],
    params: dict[str, Any] | None = None,
    num_mel_bins: int = 80,
    pos_head_dim: int | None = None,
) -> ZipformerConfig:
    """The icefall-flavour config that icefall's keys and shapes describe.

    The head count is not visible in any shape (it multiplies the per-head dimensions);
    it follows from ``pos_head_dim`` (icefall's default 4 unless the checkpoint's
    ``params`` or the caller says otherwise).
    """
    params = params or {}
    if "feature_dim" in params:
        num_mel_bins = int(params["feature_dim"])
    if pos_head_dim is None:
        pos_head_dim = int(str(params.get("pos_head_dim", DEFAULT_POS_HEAD_DIM)).split(",")[0])
    stacks = sorted({int(m.group(1)) for k in state if (m := _LAYER_KEY.match(k))})
    if not stacks or stacks != list(range(len(stacks))):
        raise IcefallImportError("no icefall Zipformer2 encoder keys ('encoder.encoders.N.…')")
    factors, layers, dims, ffs, heads, kernels, qdims, vdims = ([] for _ in range(8))
    pos_dim = 0
    for i in stacks:
        ds = state.get(f"encoder.encoders.{i}.downsample.bias")
        factors.append(1 if ds is None else ds.numel())
        prefix = f"encoder.encoders.{i}." + ("" if ds is None else "encoder.") + "layers."
        layers.append(len({k[len(prefix) :].split(".")[0] for k in state if k.startswith(prefix)}))
        layer0 = prefix + "0."
        dims.append(state[layer0 + "norm.bias"].numel())
        ffs.append(state[layer0 + "feed_forward2.in_proj.weight"].shape[0])
        kernels.append(state[layer0 + "conv_module1.depthwise_conv.weight"].shape[-1])
        pos_out, pos_dim = state[layer0 + "self_attn_weights.linear_pos.weight"].shape
        if pos_out % pos_head_dim:
            raise IcefallImportError(
                f"stack {i}: linear_pos has {pos_out} outputs, not a multiple of "
                f"pos_head_dim {pos_head_dim}; give the checkpoint's --pos-head-dim"
            )
        h = pos_out // pos_head_dim
        heads.append(h)
        in_proj = state[layer0 + "self_attn_weights.in_proj.weight"].shape[0]
        qdims.append((in_proj // h - pos_head_dim) // 2)
        vdims.append(state[layer0 + "self_attn1.in_proj.weight"].shape[0] // h)
    given_heads = _per_stack(params, "num_heads", len(stacks))
    if given_heads is not None and tuple(heads) != given_heads:
        raise IcefallImportError(
            f"head counts from shapes {heads} (pos_head_dim {pos_head_dim}) disagree with the "
            f"checkpoint's num_heads {list(given_heads)}"
        )
    for name, values in (("query_head_dim", qdims), ("value_head_dim", vdims)):
        if len(set(values)) != 1:
            raise IcefallImportError(
                f"{name} differs between stacks {values}; auden's config has one value"
            )
    channels = tuple(state[f"encoder_embed.conv.{j}.weight"].shape[0] for j in (0, 4, 7))
    freq = (((num_mel_bins - 1) // 2) - 1) // 2
    out_in = state["encoder_embed.out.weight"].shape[1]
    if out_in != channels[2] * freq:
        raise IcefallImportError(
            f"encoder_embed.out takes {out_in} inputs, but {num_mel_bins} mel bins and "
            f"{channels[2]} channels give {channels[2] * freq}; give the right --num-mel-bins"
        )
    return ZipformerConfig(
        num_mel_bins=num_mel_bins,
        downsampling_factors=tuple(factors),
        num_layers=tuple(layers),
        encoder_dims=tuple(dims),
        feedforward_dims=tuple(ffs),
        num_heads=tuple(heads),
        cnn_kernel_sizes=tuple(kernels),
        query_head_dim=qdims[0],
        value_head_dim=vdims[0],
        pos_head_dim=pos_head_dim,
        pos_dim=pos_dim,
        frontend_channels=channels,
        flavor="icefall",
    )


def convert_icefall_state(
    state: dict[str, torch.Tensor],
    params: dict[str, Any] | None = None,
    num_mel_bins: int = 80,
    pos_head_dim: int | None = None,
) -> tuple[ZipformerConfig, dict[str, torch.Tensor], CtcHead | None]:
    """icefall model state -> (config, auden encoder state, CTC head or None)."""
    params = params or {}
    check_not_streaming(state, params)
    encoder_state: dict[str, torch.Tensor] = {}
    dropped: list[str] = []
    for key, value in state.items():
        if key.startswith(("encoder_embed.", "encoder.")):
            new = _rename(key)
            if new is None:
                dropped.append(key)
            else:
                encoder_state[new] = value
        elif key.startswith(DROPPED_PREFIXES):
            dropped.append(key)
        else:
            logger.warning("icefall key '%s' is not part of the encoder; left out", key)
    config = infer_config(state, params, num_mel_bins, pos_head_dim)
    ctc = None
    if "ctc_output.1.weight" in state:
        ctc = CtcHead(state["ctc_output.1.weight"], state["ctc_output.1.bias"])
    logger.info(
        "icefall encoder: %d tensors kept, %d left out (heads, unused bypass_scale)%s",
        len(encoder_state),
        len(dropped),
        "; CTC head kept" if ctc is not None else "",
    )
    return config, encoder_state, ctc


# Logit of a class that must never win: exp(-1e4) is exactly 0 in float32 and float16.
NEVER = -1.0e4


def ctc_head_for_tokenizer(ctc: CtcHead) -> tuple[torch.Tensor, torch.Tensor]:
    """icefall's CTC head laid out as auden's ``CtcModel`` expects, giving the same log-probs.

    icefall's class ``k`` is BPE id ``k``, with id 0 (``<blk>``) the blank. auden's class 0
    is the blank and class ``i + 1`` is token ``i``, over a tokenizer that keeps icefall's
    ids. So class 0 takes icefall's blank row, class ``k + 1`` icefall's row ``k`` for
    ``k >= 1``, and class 1 (the ``<blk>`` token itself) gets a logit that never wins.
    """
    vocab, dim = ctc.weight.shape
    weight = torch.zeros(vocab + 1, dim, dtype=ctc.weight.dtype)
    bias = torch.zeros(vocab + 1, dtype=ctc.bias.dtype)
    weight[0], bias[0] = ctc.weight[0], ctc.bias[0]
    bias[1] = NEVER
    weight[2:], bias[2:] = ctc.weight[1:], ctc.bias[1:]
    return weight, bias
