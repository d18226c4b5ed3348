"""`auden import-icefall`: an icefall pretrained.pt becomes folders that auden's own loaders read.

The checkpoint is written the way icefall's export.py writes it (``{"model": state_dict}``
with the transducer heads beside the encoder), from the weights of the reference fixture
made by icefall's code (see tools/make_icefall_zipformer_fixture.py).
"""

import json
import random
from pathlib import Path

import pytest
import sentencepiece as spm
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from auden.cli import main as cli
from auden.models.ctc import CtcModel
from auden.models.encoders.base import encoder_class, read_model_type
from auden.models.encoders.zipformer.icefall import NEVER

FIXTURE = Path(__file__).parent / "fixtures" / "icefall_zipformer" / "small.safetensors"
TOLERANCE = 1e-5

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def reference() -> tuple[dict[str, torch.Tensor], dict]:
    with safe_open(str(FIXTURE), "pt") as f:
        config = json.loads(f.metadata()["config"])
    return load_file(str(FIXTURE)), config


def write_pretrained(path: Path, tensors: dict[str, torch.Tensor], **extra) -> Path:
    """A pretrained.pt as icefall's export.py saves it: the whole model's state dict."""
    state = {k[len("weights.") :]: v for k, v in tensors.items() if k.startswith("weights.")}
    state["decoder.embedding.weight"] = torch.randn(11, 8)
    state["joiner.output_linear.weight"] = torch.randn(11, 8)
    state["simple_am_proj.weight"] = torch.randn(11, 40)
    state.update(extra)
    torch.save({"model": state}, path)
    return path


def write_bpe_model(path: Path, vocab_size: int) -> Path:
    """A sentencepiece unigram model laid out as icefall's: <blk>, <sos/eos>, <unk> first."""
    rng = random.Random(0)
    text = [
        "".join(rng.choice("AB") for _ in range(rng.randint(1, 4))) + " " + "AB"[i % 2] * 3
        for i in range(200)
    ]
    with path.open("wb") as model_writer:
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(text),
            model_writer=model_writer,
            vocab_size=vocab_size,
            model_type="unigram",
            user_defined_symbols=["<blk>", "<sos/eos>"],
            unk_id=2,
            bos_id=-1,
            eos_id=-1,
            minloglevel=2,
        )
    return path


def test_imported_encoder_folder_loads_as_a_pretrained_audio_encoder(tmp_path, reference):
    tensors, cfg = reference
    ckpt = write_pretrained(tmp_path / "pretrained.pt", tensors)
    args = [str(ckpt), "--out", str(tmp_path / "enc"), "--num-mel-bins", "20"]
    assert cli(["import-icefall", *args, "--pos-head-dim", str(cfg["pos_head_dim"])]) == 0
    # The way the audio LLM loads model.audio_encoder.pretrained_model=DIR.
    assert read_model_type(tmp_path / "enc") == "zipformer"
    encoder = encoder_class("zipformer").from_pretrained(tmp_path / "enc").eval()
    assert encoder.config.flavor == "icefall"
    features = tensors["clip1.features"][None]
    with torch.no_grad():
        out = encoder(features, torch.tensor([features.shape[1]]))
    assert (out.frames[0] - tensors["clip1.encoder_out"]).abs().max().item() <= TOLERANCE


def test_ctc_export_keeps_icefalls_ctc_head_and_bpe_ids(tmp_path, reference):
    tensors, cfg = reference
    ckpt = write_pretrained(tmp_path / "pretrained.pt", tensors)
    bpe = write_bpe_model(tmp_path / "bpe.model", cfg["vocab_size"])
    args = ["--num-mel-bins", "20", "--pos-head-dim", str(cfg["pos_head_dim"])]
    outs = ["--out", str(tmp_path / "enc"), "--ctc-out", str(tmp_path / "ctc")]
    assert cli(["import-icefall", str(ckpt), *outs, "--bpe-model", str(bpe), *args]) == 0
    model = CtcModel.from_pretrained(tmp_path / "ctc").eval()
    features = tensors["clip0.features"][None]
    with torch.no_grad():
        frames = model.encoder(features, torch.tensor([features.shape[1]])).frames[0]
        log_probs = model.ctc_head(frames).log_softmax(dim=-1)
    icefall = tensors["clip0.ctc_log_probs"]
    # auden class 0 = blank = icefall class 0; auden class k+1 = token k = icefall class k.
    assert (log_probs[:, 0] - icefall[:, 0]).abs().max().item() <= TOLERANCE
    assert (log_probs[:, 2:] - icefall[:, 1:]).abs().max().item() <= TOLERANCE
    assert log_probs[:, 1].max().item() < NEVER / 2  # the "<blk>" token is never emitted
    sp = spm.SentencePieceProcessor(model_file=str(bpe))
    for text in ["AB BBB", "BAAB AAA"]:
        assert model.tokenize([text])[0] == [i + 1 for i in sp.encode(text)]
        assert model.tokenizer.decode(sp.encode(text)) == text


def test_streaming_and_wrong_inputs_are_refused_with_the_reason(tmp_path, reference, capsys):
    tensors, _ = reference
    key = "encoder.encoders.0.layers.0.conv_module1.depthwise_conv.causal_conv.weight"
    ckpt = write_pretrained(tmp_path / "streaming.pt", tensors, **{key: torch.zeros(16, 1, 4)})
    assert cli(["import-icefall", str(ckpt), "--out", str(tmp_path / "enc")]) == 2
    assert "streaming (causal)" in capsys.readouterr().err
    assert not (tmp_path / "enc").exists()

    jit = torch.jit.script(torch.nn.Linear(2, 2))
    jit.save(str(tmp_path / "jit_script.pt"))
    assert (
        cli(["import-icefall", str(tmp_path / "jit_script.pt"), "--out", str(tmp_path / "e")]) == 2
    )
    assert "not jit_script.pt" in capsys.readouterr().err

    plain = write_pretrained(tmp_path / "pretrained.pt", tensors)
    # the CLI prints a wrong input as one line (exit 2) rather than a traceback
    assert cli(["import-icefall", str(plain), "--out", str(tmp_path / "e"), "--ctc-out", "x"]) == 2
    assert "--bpe-model" in capsys.readouterr().err


def test_an_audio_llm_trains_on_the_imported_encoder_with_its_top_layers_adapted(
    tmp_path, reference
):
    """model.audio_encoder.pretrained_model=<import> with train=top_layers: one step learns."""
    from tiny_audio_llm import make_batch, make_tiny_llm, tiny_config

    from auden.models.audio_llm import AudioEncoderConfig, AudioLlm

    tensors, cfg = reference
    ckpt = write_pretrained(tmp_path / "pretrained.pt", tensors)
    args = ["--num-mel-bins", "20", "--pos-head-dim", str(cfg["pos_head_dim"])]
    assert cli(["import-icefall", str(ckpt), "--out", str(tmp_path / "enc"), *args]) == 0
    config = tiny_config(make_tiny_llm(tmp_path / "llm"))
    config.audio_encoder = AudioEncoderConfig(
        model_type="zipformer",
        pretrained_model=str(tmp_path / "enc"),
        train="top_layers",
        top_layers=2,
    )
    torch.manual_seed(0)
    model = AudioLlm.from_config(config)
    clips = [tensors["clip0.features"], tensors["clip1.features"]]
    lens = torch.tensor([len(c) for c in clips])
    features = torch.zeros(2, int(lens.max()), clips[0].shape[1])
    for i, clip in enumerate(clips):
        features[i, : len(clip)] = clip
    batch = make_batch(features, lens, ["hello world", "a quick brown fox"])
    trainable = [n for n, p in model.audio_encoder.named_parameters() if p.requires_grad]
    assert trainable and all(n.startswith(("stacks.5.blocks.1.", "output_")) for n in trainable)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    losses = []
    for _ in range(3):
        optimizer.zero_grad()
        loss = model(batch).loss
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0], losses
