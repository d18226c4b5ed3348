"""CTC encoder pretraining: it learns on real speech, decodes strings, exports and reloads."""

import subprocess

import pytest
import soundfile
import torch

from auden.audio.features import build_feature_extractor, extract_padded
from auden.auto.auto_model import AutoModel
from auden.models.ctc import CtcEncoderConfig, CtcModel, CtcModelConfig
from auden.models.encoders.zipformer import ZipformerEncoder
from auden.models.tiny_llm import train_chat_tokenizer
from auden.training.scaled_adam import Eden, ScaledAdam
from auden.types import AudioBatch

TEXTS = ["hello world", "good morning", "the cat sat"]


@pytest.fixture(scope="module")
def speech_batch(tmp_path_factory):
    """Three clips spoken by espeak-ng, resampled to 16 kHz, as an 80-bin fbank batch."""
    folder = tmp_path_factory.mktemp("speech")
    waves = []
    for i, text in enumerate(TEXTS):
        raw, wav = folder / f"{i}.raw.wav", folder / f"{i}.wav"
        subprocess.run(["espeak-ng", "-w", str(raw), text], check=True)
        subprocess.run(["sox", str(raw), "-r", "16000", str(wav)], check=True)
        samples, rate = soundfile.read(wav, dtype="float32")
        assert rate == 16000
        waves.append(samples)
    features, lens = extract_padded(build_feature_extractor("fbank"), waves)
    return AudioBatch(
        features=features,
        feature_lens=lens,
        messages=[[] for _ in TEXTS],
        targets=list(TEXTS),
        texts=list(TEXTS),
        tasks=["transcribe"] * len(TEXTS),
        prompts=[""] * len(TEXTS),
    )


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tokenizer")
    train_chat_tokenizer(TEXTS * 3, vocab_size=300).save_pretrained(str(folder))
    return folder


def _config(tokenizer_dir):
    return CtcModelConfig(encoder=CtcEncoderConfig(config="tiny"), tokenizer=str(tokenizer_dir))


def test_ctc_model_trains_a_few_steps_and_decodes_strings(speech_batch, tokenizer_dir):
    torch.manual_seed(0)
    model = AutoModel.from_config(_config(tokenizer_dir))
    assert isinstance(model, CtcModel)
    opt = ScaledAdam(model.parameters(), lr=0.05)
    sched = Eden(opt, lr_batches=0, lr_epochs=0, warmup_batches=5)
    model.train()
    losses = []
    for _ in range(15):
        out = model(speech_batch)
        losses.append(out.loss.item())
        opt.zero_grad()
        out.loss.backward()
        opt.step()
        sched.step()
    assert out.num_targets == sum(len(x) for x in model.tokenize(TEXTS))
    assert losses[-1] < 0.5 * losses[0], losses
    model.eval()
    hyps = model.decode(speech_batch)
    assert len(hyps) == len(TEXTS) and all(isinstance(h, str) for h in hyps)


def test_export_round_trip_and_encoder_reuse(speech_batch, tokenizer_dir, tmp_path):
    torch.manual_seed(0)
    model = CtcModel.from_config(_config(tokenizer_dir)).eval()
    model.save_pretrained(tmp_path / "export")
    loaded = AutoModel.from_pretrained(tmp_path / "export").eval()
    assert isinstance(loaded, CtcModel)
    with torch.no_grad():
        assert torch.equal(model.encode(speech_batch)[0], loaded.encode(speech_batch)[0])
    assert model.decode(speech_batch) == loaded.decode(speech_batch)

    # The AudioLlm path: model.audio_encoder.pretrained_model=<ctc export folder>.
    encoder = ZipformerEncoder.from_pretrained(tmp_path / "export").eval()
    x, lens = speech_batch.features, speech_batch.feature_lens
    with torch.no_grad():
        assert torch.equal(encoder(x, lens).frames, model.encoder(x, lens).frames)

    # And a CTC model can start from that pretrained encoder.
    cfg = _config(tokenizer_dir)
    cfg.encoder.pretrained_model = str(tmp_path / "export")
    warm = CtcModel.from_config(cfg).eval()
    with torch.no_grad():
        assert torch.equal(warm.encoder(x, lens).frames, model.encoder(x, lens).frames)


def test_target_fits_counts_labels_and_repeats(tokenizer_dir):
    model = CtcModel.from_config(_config(tokenizer_dir))
    n = len(model.tokenize(["hello world"])[0])
    assert model.target_fits(4 * n, "hello world")
    assert not model.target_fits(4 * n - 4, "hello world")


def test_bad_ctc_configs_name_the_key(tokenizer_dir, tmp_path):
    with pytest.raises(ValueError, match="model.tokenizer"):
        CtcModel.from_config(CtcModelConfig(tokenizer=""))
    with pytest.raises(FileNotFoundError, match="model.tokenizer"):
        CtcModel.from_config(CtcModelConfig(tokenizer=str(tmp_path / "missing")))
    with pytest.raises(ValueError, match="tokenizr"):
        AutoModel.from_config({"model_type": "zipformer_ctc", "tokenizr": "x"})
    model = CtcModel.from_config(_config(tokenizer_dir))
    with pytest.raises(ValueError, match="decoding_method"):
        model.decode(None, decoding_method="beam_search")
