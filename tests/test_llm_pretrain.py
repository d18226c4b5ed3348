"""The text pretraining stage teaches a random LLM the recipe's tasks before it hears audio."""

import torch
from tiny_audio_llm import make_tiny_llm
from transformers import AutoModelForCausalLM, AutoTokenizer

from auden.data.config import load_data_config
from auden.models.chat_inputs import ChatTokenizer
from auden.training.llm_pretrain import (
    PretrainSettings,
    TextExample,
    collect_examples,
    encode_examples,
    pretrain_llm,
)


def test_examples_put_the_spoken_words_where_the_audio_will_be(tiny_corpus):
    examples = collect_examples(load_data_config(tiny_corpus.train_data_config), seed=1)
    assert examples, "every tiny-corpus cut has spoken text"
    first = examples[0].messages()
    assert first[0]["content"][0]["text"] == examples[0].spoken
    assert first[1] == {"role": "assistant", "content": examples[0].target}


def test_only_the_reply_is_learned(tmp_path):
    folder = make_tiny_llm(tmp_path / "llm")
    chat = ChatTokenizer(AutoTokenizer.from_pretrained(folder), "<|AUDIO|>")
    batch = encode_examples(chat, [TextExample("hello world", "Repeat:", "hello world")])
    labelled = batch["labels"][0][batch["labels"][0] != -100]
    reply = chat.tokenizer.decode(labelled)
    assert reply.startswith("hello world") and "Repeat" not in reply


def test_pretrained_llm_learns_to_repeat_and_loads_back(tmp_path):
    folder = make_tiny_llm(tmp_path / "llm")
    words = ["the cat sat", "a quick brown fox", "hello world", "good morning"]
    examples = [TextExample(w, "Repeat:", w) for w in words]
    torch.manual_seed(0)
    stats = pretrain_llm(
        folder, tmp_path / "out", examples,
        PretrainSettings(num_steps=150, batch_size=4, lr=3e-3, warmup_steps=10, log_interval=50),
    )
    assert stats["token_acc"] > 0.95
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "out")
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "out")
    prompt = tokenizer.apply_chat_template(
        examples[1].messages()[:1], tokenize=False, add_generation_prompt=True
    )
    ids = tokenizer(prompt, return_tensors="pt", add_special_tokens=False).input_ids
    out = model.generate(ids, max_new_tokens=8, do_sample=False)
    assert tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True).strip() == words[1]


def test_label_fields_are_read_out_and_a_sound_without_words_is_read_by_its_labels(tmp_path):
    """With --label-fields the LLM reads "female fast hello" and, for a sound event that has
    no words, "rising tone" alone: as the audio LLM's label heads will show them."""
    from lhotse import CutSet, MonoCut, Recording, SupervisionSegment

    from auden.data.config import DataSource

    def cut(cut_id: str, text: str, custom: dict) -> MonoCut:
        rec = Recording(cut_id, [], sampling_rate=16000, num_samples=16000, duration=1.0)
        sup = SupervisionSegment(cut_id, cut_id, 0.0, 1.0, text=text, custom=custom)
        return MonoCut(cut_id, 0.0, 1.0, 0, supervisions=[sup], recording=rec)

    cuts = CutSet.from_cuts([
        cut("speech", "hello", {"gender": "female", "speed": "fast", "description": "a voice"}),
        cut("beep", "", {"event": "rising tone", "description": "a rising tone"}),
    ])
    cuts.to_file(tmp_path / "cuts.jsonl.gz")
    source = DataSource(manifest=tmp_path / "cuts.jsonl.gz", task="describe")
    read = {e.target: e.spoken for e in collect_examples([source], 1, ("gender", "speed", "event"))}
    assert read == {"a voice": "female fast hello", "a rising tone": "rising tone"}
    # Without label fields a sound has nothing to read.
    assert [e.spoken for e in collect_examples([source], 1)] == ["hello"]
