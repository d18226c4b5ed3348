import json

import numpy as np
import pytest
import torch
import transformers
from omegaconf import OmegaConf
from tiny_audio_llm import (
    make_batch,
    make_outputs_input_dependent,
    make_tiny_llm,
    tiny_config,
    user_turn,
)

from auden.auto.auto_model import AutoModel
from auden.models.audio_llm import AudioLlm, LlmConfig
from auden.models.chat_inputs import IGNORE_INDEX
from auden.models.lora import LoraConfig


@pytest.fixture
def model(llm_folder):
    torch.manual_seed(0)
    return AudioLlm.from_config(tiny_config(llm_folder)).eval()


def _clips(seed=0, lens=(300, 170, 45)):
    g = torch.Generator().manual_seed(seed)
    feats = torch.randn(len(lens), max(lens), 80, generator=g)
    return feats, torch.tensor(lens)


def test_batched_generate_equals_one_by_one(model):
    make_outputs_input_dependent(model)
    feats, lens = _clips()
    prompts = ["Transcribe:", "Repeat: the words you hear", "Transcribe: now"]
    messages = [[user_turn(p)] for p in prompts]
    # A random LLM: keep it off special tokens so that there is text to compare.
    kwargs = dict(max_new_tokens=6, suppress_tokens=model.tokenizer.all_special_ids)
    batched = model.generate((feats, lens), messages, **kwargs)
    alone = [
        model.generate(
            (feats[i : i + 1, : lens[i]], lens[i : i + 1]), messages[i : i + 1], **kwargs
        )[0]
        for i in range(3)
    ]
    assert all(batched) and len(set(batched)) == 3 and batched == alone


def test_generate_from_waveforms_uses_the_encoders_feature_extractor(model):
    make_outputs_input_dependent(model)
    from auden.audio.features import build_feature_extractor, extract_padded

    rng = np.random.default_rng(0)
    waves = [rng.standard_normal(n).astype(np.float32) * 0.1 for n in (16000, 9000)]
    messages = [[user_turn()], [user_turn()]]
    feats, lens = extract_padded(build_feature_extractor("whisper_fbank", 80), waves)
    kwargs = dict(max_new_tokens=4, suppress_tokens=model.tokenizer.all_special_ids)
    assert model.generate(waves, messages, **kwargs) == model.generate(
        (feats, lens), messages, **kwargs
    )


def test_labels_cover_only_the_assistant_turns(model):
    tok = model.tokenizer
    conversation = [
        user_turn(),
        {"role": "assistant", "content": "hello world"},
        {"role": "user", "content": "Repeat:"},
        {"role": "assistant", "content": "good morning"},
    ]
    short = [user_turn(), {"role": "assistant", "content": "hi"}]
    chat = model.chat.encode([conversation, short], [5, 2], ["a", "b"], for_generation=False)
    labelled = chat.labels[0][chat.labels[0] != IGNORE_INDEX].tolist()
    assert tok.decode(labelled) == "hello world<|im_end|>\ngood morning<|im_end|>\n"
    # Training pads on the right; the prompt (audio included) is never labelled.
    assert chat.attention_mask[1].tolist() == sorted(chat.attention_mask[1].tolist(), reverse=True)
    audio_id = model.chat.audio_token_id
    assert (chat.input_ids[0] == audio_id).sum() == 5 and (chat.input_ids[1] == audio_id).sum() == 2
    assert (chat.labels[chat.input_ids == audio_id] == IGNORE_INDEX).all()
    # Generation pads on the left and renders the same prompt tokens that training saw.
    gen = model.chat.encode([conversation[:3], short[:1]], [5, 2], ["a", "b"], for_generation=True)
    assert gen.attention_mask[1, 0] == 0 and gen.attention_mask[1, -1] == 1
    prompt_len = int(gen.attention_mask[1].sum())
    assert gen.input_ids[1, -prompt_len:].tolist() == chat.input_ids[1, :prompt_len].tolist()


def test_audio_token_clip_mismatch_raises_naming_the_clip(model):
    feats, lens = _clips(lens=(80, 40))
    batch = make_batch(feats, lens, ["hello world", "hi"], cut_ids=["utt-1", "utt-2"])
    batch.messages[1][0] = {"role": "user", "content": "<|AUDIO|> and <|AUDIO|> Transcribe:"}
    with pytest.raises(ValueError, match=r"cut 'utt-2': 5 audio frames but 2 audio tokens"):
        model(batch)
    batch.messages[1][0] = {"role": "user", "content": "Transcribe:"}
    with pytest.raises(ValueError, match=r"cut 'utt-2': 5 audio frames but 0 audio tokens"):
        model(batch)
    with pytest.raises(ValueError, match="2 conversations for 1 audio frame counts"):
        model.generate((feats[:1], lens[:1]), [[user_turn()], [user_turn()]])


def test_save_from_pretrained_and_transformers_automodel_give_identical_logits(model, tmp_path):
    feats, lens = _clips(lens=(120, 77))
    batch = make_batch(feats, lens, ["hello world", "seven green apples"])
    with torch.no_grad():
        expected, _ = model.compute_logits(batch)
    model.save_pretrained(tmp_path / "export")
    config = json.loads((tmp_path / "export" / "config.json").read_text())
    assert config["model_type"] == "audio_llm"
    assert (
        config["llm"]["pretrained_model"] == "" and config["llm"]["config"]["model_type"] == "qwen2"
    )
    assert config["audio_encoder"]["config"]["d_model"] == 64

    for loaded in (
        AudioLlm.from_pretrained(tmp_path / "export"),
        AutoModel.from_pretrained(tmp_path / "export"),
        transformers.AutoModel.from_pretrained(tmp_path / "export"),
    ):
        assert isinstance(loaded, AudioLlm) and not loaded.training
        with torch.no_grad():
            logits, _ = loaded.compute_logits(batch)
        assert torch.equal(logits, expected)


def test_frozen_modules_get_no_gradients_and_stay_in_eval_mode(llm_folder):
    torch.manual_seed(0)
    config = tiny_config(llm_folder)
    config.audio_encoder.train = "frozen"
    config.llm.frozen = True
    model = AudioLlm.from_config(config)
    model.train()
    for part in (model.audio_encoder, model.llm):
        assert not any(m.training for m in part.modules())
    assert model.projector.training
    feats, lens = _clips(lens=(60, 33))
    model(make_batch(feats, lens, ["hello world", "hi"])).loss.backward()
    assert all(p.grad is None for p in model.audio_encoder.parameters())
    assert all(p.grad is None for p in model.llm.parameters())
    assert all(p.grad is not None for p in model.projector.parameters())
    assert set(model.trainable_state_dict()) == {
        f"projector.{k}" for k, _ in model.projector.named_parameters()
    }


def test_lora_trains_only_adapters_and_merged_export_equals_unmerged(llm_folder, tmp_path):
    torch.manual_seed(0)
    config = tiny_config(llm_folder)
    config.audio_encoder.train = "frozen"
    config.llm = LlmConfig(pretrained_model=str(llm_folder), lora=LoraConfig(enabled=True, r=4))
    model = AudioLlm.from_config(config)
    llm_trainable = [n for n, p in model.llm.named_parameters() if p.requires_grad]
    assert llm_trainable and all("lora_" in n for n in llm_trainable)
    assert not any(p.requires_grad for p in model.audio_encoder.parameters())
    with torch.no_grad():  # LoRA starts as a no-op (B = 0); give it an effect to merge.
        for n, p in model.llm.named_parameters():
            if "lora_B" in n:
                p.normal_(std=0.5)
    model.eval()
    feats, lens = _clips(lens=(90, 50))
    batch = make_batch(feats, lens, ["hello world", "rain falls in spain"])
    with torch.no_grad():
        unmerged, _ = model.compute_logits(batch)
    model.save_pretrained(tmp_path / "merged")
    merged = AudioLlm.from_pretrained(tmp_path / "merged")
    assert not any("lora_" in n for n, _ in merged.named_parameters())
    assert not merged.config.llm.lora.enabled
    with torch.no_grad():
        logits, _ = merged.compute_logits(batch)
    torch.testing.assert_close(logits, unmerged, atol=1e-4, rtol=1e-4)
    with torch.no_grad():
        base = AudioLlm.from_config(tiny_config(llm_folder)).eval()
        base.audio_encoder.load_state_dict(model.audio_encoder.state_dict())
        base.projector.load_state_dict(model.projector.state_dict())
        assert not torch.allclose(base.compute_logits(batch)[0], unmerged, atol=1e-3)


def test_audio_token_is_added_and_embeddings_resized_only_when_absent(tmp_path):
    torch.manual_seed(0)
    without = make_tiny_llm(tmp_path / "no_audio_token", with_audio_token=False)
    model = AudioLlm.from_config(tiny_config(without))
    vocab = transformers.AutoConfig.from_pretrained(without).vocab_size
    assert model.llm.get_input_embeddings().num_embeddings == vocab + 1
    assert model.tokenizer.convert_tokens_to_ids("<|AUDIO|>") == vocab
    with_token = make_tiny_llm(tmp_path / "with_audio_token")
    model = AudioLlm.from_config(tiny_config(with_token))
    assert model.llm.get_input_embeddings().num_embeddings == len(model.tokenizer)


def test_automodel_builds_from_a_hydra_config_and_rejects_unknown_keys(llm_folder):
    torch.manual_seed(0)
    cfg = OmegaConf.structured(tiny_config(llm_folder))
    model = AutoModel.from_config(cfg)
    assert isinstance(model, AudioLlm) and model.config.audio_encoder.model_type == "whisper"
    bad = OmegaConf.to_container(cfg)
    bad["projector"]["ds_rat"] = 2
    with pytest.raises(ValueError, match="ds_rat"):
        AutoModel.from_config(bad)


def test_decode_supports_greedy_and_beam_search(model):
    feats, lens = _clips(lens=(64, 30))
    batch = make_batch(feats, lens, ["hello world", "hi"], cut_ids=["a", "b"])
    greedy = model.decode(batch, max_new_tokens=4)
    beam = model.decode(batch, decoding_method="beam_search", beam_size=3, max_new_tokens=4)
    assert len(greedy) == len(beam) == 2
    with pytest.raises(ValueError, match="unknown decoding_method 'viterbi'"):
        model.decode(batch, decoding_method="viterbi")
