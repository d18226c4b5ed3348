import pytest

from auden.models.chat_inputs import IGNORE_INDEX, ChatTokenizer
from auden.models.tiny_llm import train_chat_tokenizer

# Qwen2.5's layout: a default system prompt is inserted when the conversation has none.
QWEN25_LIKE = (
    "{%- if messages[0]['role'] != 'system' -%}"
    "{{- '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' -}}{%- endif -%}"
    "{%- for m in messages -%}{{- '<|im_start|>' + m['role'] + '\\n' + m['content'] "
    "+ '<|im_end|>\\n' -}}{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' -}}{%- endif -%}"
)
# Drops earlier assistant turns (like templates that strip old reasoning): not a prefix.
DROPS_HISTORY = (
    "{%- for m in messages -%}{%- if m['role'] != 'assistant' or loop.last -%}"
    "{{- '<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>\\n' -}}"
    "{%- endif -%}{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' -}}{%- endif -%}"
)


def _chat(template: str) -> ChatTokenizer:
    tokenizer = train_chat_tokenizer(["hello world", "good morning"], vocab_size=300)
    tokenizer.chat_template = template
    return ChatTokenizer(tokenizer, "<|AUDIO|>")


def test_labels_follow_the_template_structure_with_a_default_system_prompt():
    chat = _chat(QWEN25_LIKE)
    conversation = [
        {"role": "user", "content": [{"type": "audio"}, {"type": "text", "text": "Say it:"}]},
        {"role": "assistant", "content": "hello world"},
    ]
    out = chat.encode([conversation], [3], ["clip"], for_generation=False)
    labelled = out.labels[0][out.labels[0] != IGNORE_INDEX].tolist()
    assert chat.tokenizer.decode(labelled) == "hello world<|im_end|>\n"
    text = chat.tokenizer.decode(out.input_ids[0])
    assert text.startswith("<|im_start|>system\nYou are a helpful assistant.")
    assert text.count("<|AUDIO|>") == 3


def test_a_template_that_rewrites_history_is_refused_not_guessed():
    chat = _chat(DROPS_HISTORY)
    conversation = [
        {"role": "user", "content": "<|AUDIO|> one"},
        {"role": "assistant", "content": "hello"},
        {"role": "user", "content": "two"},
        {"role": "assistant", "content": "world"},
    ]
    with pytest.raises(ValueError, match="cut 'u1': the chat template does not render turn 3"):
        chat.encode([conversation], [2], ["cut 'u1'"], for_generation=False)


def test_conversations_without_an_assistant_turn_cannot_train():
    chat = _chat(QWEN25_LIKE)
    with pytest.raises(ValueError, match="clip 0: training needs an assistant turn"):
        chat.encode(
            [[{"role": "user", "content": "<|AUDIO|>"}]], [1], ["clip 0"], for_generation=False
        )


def test_a_clip_too_short_for_one_audio_frame_is_named():
    chat = _chat(QWEN25_LIKE)
    messages = [[{"role": "user", "content": "<|AUDIO|>"}, {"role": "assistant", "content": "hi"}]]
    with pytest.raises(ValueError, match="cut 'tiny': too short"):
        chat.encode(messages, [0], ["cut 'tiny'"], for_generation=False)


def test_each_clip_of_a_conversation_gets_its_own_frame_count_and_labels_stay_on_replies():
    chat = _chat(QWEN25_LIKE)
    conversation = [
        {"role": "user", "content": [{"type": "audio"}, {"type": "text", "text": "Say it:"}]},
        {"role": "assistant", "content": "hello world"},
        {"role": "user", "content": [{"type": "text", "text": "and"}, {"type": "audio"},
                                     {"type": "audio"}]},
        {"role": "assistant", "content": "good morning"},
    ]
    out = chat.encode([conversation], [[2, 5, 1]], ["talk"], for_generation=False)
    text = chat.tokenizer.decode(out.input_ids[0])
    assert "user\n" + "<|AUDIO|>" * 2 + " Say it:" in text
    assert "user\nand " + "<|AUDIO|>" * 5 + " <|AUDIO|><|im_end|>" in text
    labelled = out.labels[0][out.labels[0] != IGNORE_INDEX].tolist()
    assert chat.tokenizer.decode(labelled) == "hello world<|im_end|>\ngood morning<|im_end|>\n"
    with pytest.raises(ValueError, match=r"talk: 2 clips of \[2, 5\] audio frames but 3"):
        chat.encode([conversation], [[2, 5]], ["talk"], for_generation=False)
