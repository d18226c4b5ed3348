"""SIFT data: instruction and response targets written by a local text LLM from a corpus's
transcripts and voice metadata, as Lhotse cuts for the ``instruct`` task.

    auden sift data/fbank/cv_cuts_train.jsonl.gz data/sift/cv_sift_cuts_train.jsonl.gz \\
        --llm models/Qwen2.5-3B-Instruct --metadata-mapping configs/sift_mapping.yaml

:mod:`.metadata` normalises the voice fields, :mod:`.modes` holds the three modes
(``sift_s``, ``sift_ssp``, ``sit_ssp``), :mod:`.generate` samples from the LLM with one
seed per cut, :mod:`.screen` drops bad outputs, :mod:`.run` makes the manifest in
resumable parts (``make_sift``), :mod:`.options` holds the settings. Nothing is imported
here, so the settings load without torch.
"""
