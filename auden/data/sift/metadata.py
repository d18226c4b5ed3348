"""Voice metadata of a cut, normalised to the few labels the SIFT prompts use.

Corpora label voices in their own words (``ang``, ``F``, ``fourties``, a speaking rate, a
level in dB). The LLM that writes SIFT targets should see one vocabulary, and only what
the corpus states: a field the corpus does not carry, or a value no map knows, is left
out, never guessed.

| field   | labels                                                            | from                         |
|---------|-------------------------------------------------------------------|------------------------------|
| gender  | male, female                                                      | a label                      |
| age     | teenager, young adult, middle-age adult, senior                   | a label or a number of years |
| emotion | angry, happy, sad, surprise, neutral, fear, disgust               | a label                      |
| pace    | slow (< 6.0), normal, fast (> 9.0) syllables per second           | a rate, else words/duration  |
| volume  | quiet (< -16.4 dB), loud (> -10 dB); omitted in between           | a relative level in dB       |
| accent  | as given                                                          | a label                      |

A recipe says where each field lives with a small yaml mapping (every key optional)::

    emotion: {field: custom.emo, values: {exc: happy, fru: angry}}
    gender: {field: gender}
    speaking_rate: {field: custom.syllables_per_second}

``field`` is a supervision attribute (``gender``, ``speaker``...) or ``custom.<key>``;
``values`` adds to the built-in synonyms below.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

if TYPE_CHECKING:
    from lhotse import SupervisionSegment
    from lhotse.cut import Cut

logger = logging.getLogger(__name__)

FIELD_ORDER = ("gender", "age", "emotion", "pace", "volume", "accent")

EMOTIONS = ("angry", "happy", "sad", "surprise", "neutral", "fear", "disgust")
GENDERS = ("male", "female")
AGES = ("teenager", "young adult", "middle-age adult", "senior")

# Labels seen in common emotion and voice corpora (IEMOCAP, CREMA-D, RAVDESS, MELD, ESD,
# Common Voice), lower-cased.
_SYNONYMS: dict[str, dict[str, str]] = {
    "emotion": {
        "ang": "angry",
        "anger": "angry",
        "mad": "angry",
        "hap": "happy",
        "happiness": "happy",
        "joy": "happy",
        "joyful": "happy",
        "exc": "happy",
        "excited": "happy",
        "sadness": "sad",
        "sur": "surprise",
        "surprised": "surprise",
        "neu": "neutral",
        "calm": "neutral",
        "fea": "fear",
        "fearful": "fear",
        "afraid": "fear",
        "scared": "fear",
        "dis": "disgust",
        "disgusted": "disgust",
    },  # fmt: skip
    "gender": {
        "m": "male",
        "man": "male",
        "male_masculine": "male",
        "masculine": "male",
        "f": "female",
        "woman": "female",
        "female_feminine": "female",
        "feminine": "female",
    },  # fmt: skip
    "age": {
        "teen": "teenager",
        "teens": "teenager",
        "twenties": "young adult",
        "thirties": "young adult",
        "young": "young adult",
        "fourties": "middle-age adult",
        "forties": "middle-age adult",
        "fifties": "middle-age adult",
        "middle-aged": "middle-age adult",
        "sixties": "senior",
        "seventies": "senior",
        "eighties": "senior",
        "nineties": "senior",
        "old": "senior",
        "elderly": "senior",
    },  # fmt: skip
}
_CANONICAL = {"emotion": EMOTIONS, "gender": GENDERS, "age": AGES}

# The raw fields a mapping may name, and where they are looked for by default.
_DEFAULT_FIELDS: dict[str, tuple[str, ...]] = {
    "gender": ("gender", "custom.gender"),
    "age": ("custom.age",),
    "emotion": ("custom.emotion",),
    "speaking_rate": ("custom.speaking_rate",),  # syllables per second
    "volume_db": ("custom.volume_db",),  # relative level in dB
    "accent": ("custom.accent",),
}

PACE_SLOW, PACE_FAST = 6.0, 9.0  # syllables per second
VOLUME_QUIET, VOLUME_LOUD = -16.4, -10.0  # dB


@dataclass(frozen=True)
class FieldSource:
    """Where one raw field lives in a supervision, and the recipe's own value map."""

    paths: tuple[str, ...]
    values: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class MetadataMapping:
    """Where a corpus keeps each voice field; the defaults read ``custom.<field>``."""

    sources: dict[str, FieldSource] = field(
        default_factory=lambda: {k: FieldSource(v) for k, v in _DEFAULT_FIELDS.items()}
    )

    @classmethod
    def from_yaml(cls, path: str | Path) -> MetadataMapping:
        """Read a recipe's mapping; unknown fields or keys are errors that name the file."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"metadata mapping '{path}' not found")
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        if not isinstance(raw, dict):
            raise ValueError(f"metadata mapping '{path}': expected a mapping of fields")
        sources = {k: FieldSource(v) for k, v in _DEFAULT_FIELDS.items()}
        for name, entry in raw.items():
            if name not in _DEFAULT_FIELDS:
                raise ValueError(
                    f"metadata mapping '{path}': unknown field '{name}'; "
                    f"known: {sorted(_DEFAULT_FIELDS)}"
                )
            if not isinstance(entry, dict) or set(entry) - {"field", "values"}:
                raise ValueError(
                    f"metadata mapping '{path}', field '{name}': expected "
                    f"{{field: ..., values: {{...}}}}, got {entry!r}"
                )
            values = entry.get("values") or {}
            if name in _CANONICAL:
                bad = {v for v in values.values() if v not in _CANONICAL[name]}
                if bad:
                    raise ValueError(
                        f"metadata mapping '{path}', field '{name}': values {sorted(bad)} "
                        f"are not among {list(_CANONICAL[name])}"
                    )
            paths = (entry["field"],) if "field" in entry else _DEFAULT_FIELDS[name]
            sources[name] = FieldSource(
                tuple(paths), {str(k).lower(): str(v) for k, v in values.items()}
            )
        return cls(sources)


class MetadataNormalizer:
    """Turns a cut's raw voice fields into ``{"gender": "female", "pace": "slow", ...}``.

    Counts the raw values it could not map (``unmapped``), so a recipe sees which labels
    its mapping misses.
    """

    def __init__(self, mapping: MetadataMapping | None = None) -> None:
        self.mapping = mapping or MetadataMapping()
        self.unmapped: Counter[str] = Counter()

    def __call__(self, cut: Cut) -> dict[str, str]:
        sup = cut.supervisions[0]
        meta: dict[str, str] = {}
        for name in ("gender", "age", "emotion"):
            value = self._label(name, self._raw(sup, name))
            if value is not None:
                meta[name] = value
        pace = self._pace(sup)
        if pace is not None:
            meta["pace"] = pace
        volume = _number(self._raw(sup, "volume_db"))
        if volume is not None and volume < VOLUME_QUIET:
            meta["volume"] = "quiet"
        elif volume is not None and volume > VOLUME_LOUD:
            meta["volume"] = "loud"
        accent = self._raw(sup, "accent")
        if accent is not None and str(accent).strip():
            meta["accent"] = str(accent).strip()
        return meta

    def _raw(self, sup: SupervisionSegment, name: str):
        for path in self.mapping.sources[name].paths:
            if path.startswith("custom."):
                value = (sup.custom or {}).get(path[len("custom.") :])
            else:
                value = getattr(sup, path, None)
            if value is not None and str(value).strip() != "":
                return value
        return None

    def _label(self, name: str, raw) -> str | None:
        if raw is None:
            return None
        key = str(raw).strip().lower()
        own = self.mapping.sources[name].values
        if key in own:
            return own[key]
        if key in _CANONICAL[name]:
            return key
        if key in _SYNONYMS[name]:
            return _SYNONYMS[name][key]
        if name == "age" and (years := _number(raw)) is not None:
            return _age_group(years)
        self.unmapped[f"{name}={key}"] += 1
        if self.unmapped[f"{name}={key}"] == 1:
            logger.warning(
                "%s '%s' is not mapped to any of %s: left out", name, key, _CANONICAL[name]
            )
        return None

    def _pace(self, sup: SupervisionSegment) -> str | None:
        rate = _number(self._raw(sup, "speaking_rate"))
        if rate is None and sup.text and sup.duration > 0:
            rate = count_syllables(sup.text) / sup.duration
        if rate is None:
            return None
        if rate < PACE_SLOW:
            return "slow"
        return "fast" if rate > PACE_FAST else "normal"


def metadata_block(meta: dict[str, str], text: str) -> str:
    """What the LLM reads in the voice-aware modes: ``<meta>k: v, ...</meta><text>...</text>``."""
    fields = ", ".join(f"{k}: {meta[k]}" for k in FIELD_ORDER if k in meta)
    return f"<meta>{fields}</meta><text>{text}</text>"


def count_syllables(text: str) -> int:
    """English syllables, estimated as vowel groups per word (a silent final 'e' dropped)."""
    total = 0
    for word in re.findall(r"[a-z']+", text.lower()):
        groups = re.findall(r"[aeiouy]+", word)
        n = len(groups)
        if n > 1 and word.endswith("e") and not word.endswith(("le", "ee")):
            n -= 1
        total += max(n, 1)
    return total


def _age_group(years: float) -> str | None:
    if years < 13:
        return None  # children have no label in the set
    if years < 20:
        return "teenager"
    if years < 40:
        return "young adult"
    return "middle-age adult" if years < 60 else "senior"


def _number(value) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None
