"""The mini_en corpus plan: what each utterance says, in which voice, and its targets.

A small closed vocabulary (colours, animals, numbers, a few verbs and adjectives),
short utterances (1-3 s) and many espeak-ng voices, so that a tiny audio LLM can learn
all four tasks on a CPU in minutes. The plan is deterministic given (num_utts, seed);
``synthesize.py`` turns it into audio, ``make_manifests.py`` into Lhotse manifests.

Material kinds and the supervision fields each task reads (auden/data/tasks.py):

| kind     | example (spoken / made)          | text (transcribe) | custom target                    |
|----------|----------------------------------|-------------------|----------------------------------|
| phrase   | "the red cat can jump"           | the words         | description                      |
| dialogue | "how are you"                    | the words         | reply: "i am fine thank you"     |
| question | "what is three plus four"        | the words         | answer: "seven"                  |
| event    | sox: a rising tone               | "" (no speech)    | description: "a rising tone"     |

Every speech utterance also carries ``description`` ("a fast high-pitched female voice
saying 'red cat'") and the attributes it was made from (custom voice, gender, speed,
pitch, rate_wpm, pitch_value); events carry ``event`` (e.g. "rising tone").
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, field

COLOURS = ["red", "blue", "green", "yellow", "black", "white", "brown", "pink"]
ANIMALS = ["cat", "dog", "bird", "fish", "horse", "cow", "pig", "duck"]
NUMBERS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"]
VERBS = ["run", "jump", "swim", "sing", "eat", "sleep"]
ADJECTIVES = ["big", "small", "happy", "sad", "old", "young"]
LEGS = {"cat": 4, "dog": 4, "bird": 2, "fish": 0, "horse": 4, "cow": 4, "pig": 4, "duck": 2}
THING_COLOURS = {"sky": "blue", "grass": "green", "snow": "white", "sun": "yellow", "coal": "black"}

PHRASE_TEMPLATES = [
    "{colour} {animal}",
    "the {animal} can {verb}",
    "the {colour} {animal} is {adjective}",
    "look at the {adjective} {animal}",
    "{adjective} {colour} {animal}",
]
# First turn -> reply. Deterministic, so the reply is learnable; slots make the model listen.
DIALOGUES = [
    ("how are you", "i am fine thank you"),
    ("good morning", "good morning to you"),
    ("what is your name", "my name is auden"),
    ("thank you", "you are welcome"),
    ("see you later", "goodbye see you soon"),
    ("do you like the {colour} {animal}", "yes i like the {colour} {animal}"),
    ("where is the {animal}", "the {animal} is over there"),
    ("can the {animal} {verb}", "yes the {animal} can {verb}"),
]
# Sound event -> its description (the describe target).
SOUND_EVENTS = {
    "rising tone": "a rising tone",
    "falling tone": "a falling tone",
    "steady tone": "a steady tone",
    "burst of noise": "a burst of noise",
    "two beeps": "two beeps",
    "three beeps": "three beeps",
    "low hum": "a low hum",
}

# espeak-ng accents x variants = voices. Variants keep their gender; accents change phonetics.
ACCENTS = [
    "en", "en-us", "en-gb-scotland", "en-gb-x-gbclan",
    "en-gb-x-rp", "en-gb-x-gbcwmd", "en-029", "en-us-nyc",
]
MALE_VARIANTS = ["m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8",
                 "adam", "Andy", "john", "max", "paul", "rob", "edward"]
FEMALE_VARIANTS = ["f1", "f2", "f3", "f4", "f5", "Alicia", "Andrea", "Annie",
                   "belinda", "linda", "steph", "anika", "aunty"]
UNSEEN_PER_ACCENT = 3

# Attribute label -> espeak-ng setting range (words per minute / pitch 0..99).
SPEEDS = {"slow": (110, 135), "steady": (150, 180), "fast": (205, 240)}
PITCHES = {"low": (10, 30), "mid": (40, 60), "high": (70, 90)}

SPLITS = ("train", "dev", "test-seen", "test-unseen")
# task -> the material kinds (supervision.custom["kind"]) that serve it
TASK_KINDS = {
    "transcribe": ("phrase", "dialogue", "question"),
    "continue": ("dialogue",),
    "describe": ("phrase", "dialogue", "question", "event"),
    "answer": ("question",),
    "instruct": ("phrase", "dialogue", "question"),  # local/instruct.py
}
KIND_SHARES = {"phrase": 0.35, "dialogue": 0.2, "question": 0.3, "event": 0.15}
HELD_OUT_SHARE = 0.05  # of num_utts, for each of dev, test-seen and test-unseen


@dataclass(frozen=True)
class Voice:
    accent: str
    variant: str
    gender: str  # "male" | "female"

    @property
    def name(self) -> str:
        return f"{self.accent}+{self.variant}"


@dataclass
class Utterance:
    """One planned recording: how to make it and every target it carries."""

    id: str
    split: str
    kind: str  # phrase | dialogue | question | event
    text: str  # spoken words ("" for an event)
    description: str
    voice: str | None = None
    gender: str | None = None
    speed: str | None = None
    pitch: str | None = None
    rate_wpm: int | None = None
    pitch_value: int | None = None
    reply: str | None = None
    answer: str | None = None
    event: str | None = None
    sox: dict = field(default_factory=dict)  # synthesis-only settings (gain, padding, ...)

    def to_dict(self) -> dict:
        return asdict(self)


def all_voices() -> list[Voice]:
    variants = [(v, "male") for v in MALE_VARIANTS] + [(v, "female") for v in FEMALE_VARIANTS]
    return [Voice(a, v, g) for a in ACCENTS for v, g in variants]


def split_voices() -> tuple[list[Voice], list[Voice]]:
    """(seen, unseen) voices: each accent and each variant stays in training through
    other pairings; only the pairings in ``unseen`` are never heard in training."""
    variants = MALE_VARIANTS + FEMALE_VARIANTS
    # Interleave genders so the held-out pairings mix male and female variants.
    order = [v for pair in zip(MALE_VARIANTS, FEMALE_VARIANTS) for v in pair]
    order += [v for v in variants if v not in order]
    held = {
        (accent, order[(i * UNSEEN_PER_ACCENT + k) % len(order)])
        for i, accent in enumerate(ACCENTS)
        for k in range(UNSEEN_PER_ACCENT)
    }
    seen, unseen = [], []
    for voice in all_voices():
        (unseen if (voice.accent, voice.variant) in held else seen).append(voice)
    return seen, unseen


def split_sizes(num_utts: int) -> dict[str, int]:
    if num_utts < 4 * 4 * len(KIND_SHARES):
        raise ValueError(f"--num-utts must be at least {4 * 4 * len(KIND_SHARES)}, got {num_utts}")
    held_out = max(2 * len(KIND_SHARES), round(num_utts * HELD_OUT_SHARE))
    return {"train": num_utts - 3 * held_out, "dev": held_out,
            "test-seen": held_out, "test-unseen": held_out}


def kind_counts(total: int) -> dict[str, int]:
    """Split ``total`` over the kinds by KIND_SHARES, at least one of each."""
    counts = {k: max(1, int(total * share)) for k, share in KIND_SHARES.items()}
    counts["phrase"] += total - sum(counts.values())
    return counts


def plan_corpus(num_utts: int, seed: int = 42) -> dict[str, list[Utterance]]:
    """The whole corpus, split by split; the same arguments always give the same plan."""
    seen, unseen = split_voices()
    plan: dict[str, list[Utterance]] = {}
    for split_index, (split, size) in enumerate(split_sizes(num_utts).items()):
        rng = random.Random(seed * 1000 + split_index)
        if split == "train":
            voices = seen
        elif split == "test-unseen":
            voices = unseen
        else:  # dev and test-seen speak only in voices the training split really uses
            used = {u.voice for u in plan["train"] if u.voice}
            voices = [v for v in seen if v.name in used]
        kinds = [k for k, n in kind_counts(size).items() for _ in range(n)]
        rng.shuffle(kinds)
        plan[split] = [
            _plan_one(f"mini_en-{split}-{i:06d}", split, kind, voices, rng)
            for i, kind in enumerate(kinds)
        ]
    return plan


def _plan_one(utt_id: str, split: str, kind: str, voices: list[Voice], rng: random.Random):
    sox = {"gain_db": -rng.uniform(1.0, 10.0), "pad_start": round(rng.uniform(0.05, 0.25), 3),
           "pad_end": round(rng.uniform(0.05, 0.25), 3)}
    if kind == "event":
        event = rng.choice(sorted(SOUND_EVENTS))
        sox.update(_event_settings(event, rng))
        return Utterance(utt_id, split, kind, text="", description=SOUND_EVENTS[event],
                         event=event, sox=sox)
    slots = {"colour": rng.choice(COLOURS), "animal": rng.choice(ANIMALS),
             "verb": rng.choice(VERBS), "adjective": rng.choice(ADJECTIVES)}
    reply = answer = None
    if kind == "phrase":
        text = rng.choice(PHRASE_TEMPLATES).format(**slots)
    elif kind == "dialogue":
        first, second = rng.choice(DIALOGUES)
        text, reply = first.format(**slots), second.format(**slots)
    elif kind == "question":
        text, answer = _question(rng)
    else:
        raise ValueError(f"unknown kind '{kind}'")
    voice = rng.choice(voices)
    speed, pitch = rng.choice(list(SPEEDS)), rng.choice(list(PITCHES))
    # Channel variation (band limits) so the model does not learn one microphone.
    sox.update(highpass=rng.randint(40, 200), lowpass=rng.randint(3800, 7800))
    return Utterance(
        utt_id, split, kind, text=text,
        description=describe_voice(speed, pitch, voice.gender, text),
        voice=voice.name, gender=voice.gender, speed=speed, pitch=pitch,
        rate_wpm=rng.randint(*SPEEDS[speed]), pitch_value=rng.randint(*PITCHES[pitch]),
        reply=reply, answer=answer, sox=sox,
    )


def describe_voice(speed: str, pitch: str, gender: str, text: str) -> str:
    return f"a {speed} {pitch}-pitched {gender} voice saying '{text}'"


def description_attributes(description: str) -> dict[str, str | None]:
    """Read the attributes back out of a (reference or hypothesis) description.

    >>> description_attributes("a fast high-pitched female voice saying 'red cat'")
    {'speed': 'fast', 'pitch': 'high', 'gender': 'female', 'event': None}
    """
    event = next((e for e, d in SOUND_EVENTS.items() if description.strip() == d), None)
    if event is not None:
        return {"speed": None, "pitch": None, "gender": None, "event": event}
    words = description.split("saying")[0].replace("-pitched", "").split()

    def pick(options) -> str | None:
        return next((w for w in words if w in options), None)

    return {"speed": pick(SPEEDS), "pitch": pick(PITCHES),
            "gender": pick(("male", "female")), "event": None}


def _question(rng: random.Random) -> tuple[str, str]:
    kind = rng.choices(["plus", "minus", "after", "legs", "colour"], weights=[4, 4, 2, 1, 1])[0]
    if kind == "plus":
        a = rng.randint(0, 10)
        b = rng.randint(0, 10 - a)
        return f"what is {NUMBERS[a]} plus {NUMBERS[b]}", NUMBERS[a + b]
    if kind == "minus":
        a = rng.randint(0, 10)
        b = rng.randint(0, a)
        return f"what is {NUMBERS[a]} minus {NUMBERS[b]}", NUMBERS[a - b]
    if kind == "after":
        n = rng.randint(0, 9)
        return f"what comes after {NUMBERS[n]}", NUMBERS[n + 1]
    if kind == "legs":
        animal = rng.choice(ANIMALS)
        return f"how many legs does a {animal} have", NUMBERS[LEGS[animal]]
    thing = rng.choice(sorted(THING_COLOURS))
    return f"what colour is the {thing}", THING_COLOURS[thing]


def _event_settings(event: str, rng: random.Random) -> dict:
    duration = round(rng.uniform(0.6, 1.6), 3)
    low = rng.randint(200, 500)
    if event == "rising tone":
        return {"duration": duration, "from_hz": low, "to_hz": low * rng.randint(2, 4)}
    if event == "falling tone":
        return {"duration": duration, "from_hz": low * rng.randint(2, 4), "to_hz": low}
    if event == "steady tone":
        return {"duration": duration, "from_hz": rng.randint(300, 1500)}
    if event == "burst of noise":
        return {"duration": round(rng.uniform(0.3, 0.8), 3),
                "noise": rng.choice(["whitenoise", "pinknoise", "brownnoise"])}
    if event in ("two beeps", "three beeps"):
        return {"beep": round(rng.uniform(0.08, 0.2), 3), "gap": round(rng.uniform(0.08, 0.25), 3),
                "from_hz": rng.randint(600, 2000), "count": 2 if event == "two beeps" else 3}
    if event == "low hum":
        return {"duration": duration, "from_hz": rng.randint(50, 120)}
    raise ValueError(f"unknown sound event '{event}'")
