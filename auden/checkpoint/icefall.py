"""Import an icefall Zipformer checkpoint (``pretrained.pt``) as auden model folders, no k2 needed.

The encoder becomes a ``zipformer`` folder (``flavor: icefall``) that
``model.audio_encoder.pretrained_model=DIR`` loads; with icefall's BPE model, a CTC
checkpoint also becomes a ``zipformer_ctc`` folder that keeps icefall's CTC head::

    auden import-icefall exp/pretrained.pt --out exp/icefall_encoder
    auden import-icefall exp/pretrained.pt --out exp/icefall_encoder \\
        --ctc-out exp/icefall_ctc --bpe-model data/lang_bpe_500/bpe.model
"""

from __future__ import annotations

import logging
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from auden.checkpoint.storage import load_checkpoint
from auden.models.encoders.zipformer import ZipformerConfig, ZipformerEncoder
from auden.models.encoders.zipformer.icefall import (
    IcefallImportError,
    convert_icefall_state,
    ctc_head_for_tokenizer,
)

logger = logging.getLogger(__name__)

_WHICH_FILE = (
    "Give icefall's pretrained.pt (or epoch-N.pt), not jit_script.pt; "
    "tools/compare_icefall_jit.py checks an import against a jit_script.pt."
)


@dataclass
class IcefallImport:
    """What an import wrote: the encoder folder, the CTC folder if asked, and the config."""

    encoder_dir: Path
    ctc_dir: Path | None
    config: ZipformerConfig
    num_params: int


def read_icefall_checkpoint(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The model state and the training params (if saved) of an icefall checkpoint."""
    # torch.load would hand a TorchScript archive to torch.jit.load: refuse it first.
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            if any(n.endswith("/constants.pkl") or "/code/" in n for n in archive.namelist()):
                raise IcefallImportError(f"'{path}' is a TorchScript archive. {_WHICH_FILE}")
    try:
        ckpt = load_checkpoint(path)
    except ValueError as e:
        raise IcefallImportError(f"{e}\n{_WHICH_FILE}") from e
    if not isinstance(ckpt, dict):
        raise IcefallImportError(f"'{path}' holds a {type(ckpt).__name__}. {_WHICH_FILE}")
    state = ckpt.get("model", ckpt)
    if not isinstance(state, dict) or not any(k.startswith("encoder.") for k in state):
        raise IcefallImportError(f"'{path}' has no icefall encoder weights ('encoder.…' keys)")
    # icefall's epoch checkpoints also carry the training params at the top level.
    params = {k: v for k, v in ckpt.items() if isinstance(v, (str, int, float, bool))}
    return state, params


def sentencepiece_tokenizer(bpe_model: str | Path):
    """icefall's ``bpe.model`` as a transformers tokenizer whose ids are the same ids.

    icefall's models are sentencepiece unigram models with ``<blk>``, ``<sos/eos>`` and
    ``<unk>`` as ids 0-2; the tokenizer keeps every id, so icefall's CTC class ``k`` is
    token ``k``.
    """
    import sentencepiece as spm  # noqa: PLC0415
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers  # noqa: PLC0415
    from transformers import PreTrainedTokenizerFast  # noqa: PLC0415

    if not Path(bpe_model).is_file():
        raise FileNotFoundError(f"--bpe-model '{bpe_model}' does not exist")
    sp = spm.SentencePieceProcessor(model_file=str(bpe_model))
    pieces = [(sp.id_to_piece(i), sp.get_score(i)) for i in range(sp.get_piece_size())]
    tok = Tokenizer(models.Unigram(pieces, unk_id=sp.unk_id(), byte_fallback=False))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    specials = [p for p, _ in pieces if p.startswith("<") and p.endswith(">")]
    unk = sp.id_to_piece(sp.unk_id())
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token=unk,
        additional_special_tokens=[p for p in specials if p != unk],
    )


def import_icefall(
    checkpoint: str | Path,
    out: str | Path,
    *,
    ctc_out: str | Path | None = None,
    bpe_model: str | Path | None = None,
    num_mel_bins: int = 80,
    pos_head_dim: int | None = None,
) -> IcefallImport:
    """Write icefall's encoder (and, with ``ctc_out``, its CTC model) as auden folders."""
    if ctc_out is not None and bpe_model is None:
        raise ValueError("--ctc-out needs --bpe-model (icefall's data/lang_bpe_*/bpe.model)")
    state, params = read_icefall_checkpoint(checkpoint)
    config, encoder_state, ctc = convert_icefall_state(state, params, num_mel_bins, pos_head_dim)
    encoder = ZipformerEncoder(config)
    try:
        encoder.load_state_dict(encoder_state, strict=True)
    except RuntimeError as e:
        raise IcefallImportError(
            f"'{checkpoint}': weights do not fit the inferred {config}: {e}"
        ) from e
    encoder_dir = encoder.save_pretrained(out)
    logger.info("wrote icefall encoder (%d params) to %s", encoder.num_params(), encoder_dir)
    ctc_dir = None
    if ctc_out is not None:
        if ctc is None:
            raise IcefallImportError(f"'{checkpoint}' has no CTC head (ctc_output.1.*)")
        ctc_dir = _write_ctc_model(encoder, ctc, bpe_model, ctc_out)
    return IcefallImport(Path(encoder_dir), ctc_dir, config, encoder.num_params())


def _write_ctc_model(encoder, ctc, bpe_model, out) -> Path:
    from auden.models.ctc import CtcModel, CtcModelConfig  # noqa: PLC0415

    tokenizer = sentencepiece_tokenizer(bpe_model)
    if len(tokenizer) != ctc.weight.shape[0]:
        raise IcefallImportError(
            f"--bpe-model '{bpe_model}' has {len(tokenizer)} tokens but the CTC head has "
            f"{ctc.weight.shape[0]} classes; give the lang dir the model was trained with"
        )
    model = CtcModel(CtcModelConfig(), tokenizer=tokenizer, encoder=encoder)
    weight, bias = ctc_head_for_tokenizer(ctc)
    model.ctc_head.load_state_dict({"weight": weight, "bias": bias})
    folder = model.save_pretrained(out)
    logger.info("wrote icefall CTC model (%d classes) to %s", weight.shape[0], folder)
    return Path(folder)
