"""An English text normaliser in the spirit of Whisper's, applied to references and hypotheses
before scoring, so that "Mr. Smith won't pay twenty-five dollars" and "mister smith will not
pay $25" count as the same words.

Steps: lower-case; drop bracketed asides and fillers (uh, um, hmm); expand contractions and
titles; remove diacritics and punctuation (keeping what numbers need); spoken numbers to
digits (ordinals, decimals, percents, currencies, years like "nineteen eighty four");
British to American spelling; collapse spaces.

Example::

    normalize_english("Mr. Smith won't pay twenty-five dollars!")  # 'mister smith will not pay $25'
"""

from __future__ import annotations

import re
import unicodedata

_FILLERS = re.compile(r"\b(?:hmm+|mm+|mhm|uh+|um+|erm|uhm)\b")
_BRACKETS = re.compile(r"[<\[][^>\]]*[>\]]|\([^)]*\)")

# (pattern, replacement), applied in order; specific forms before the generic suffixes.
_REPLACEMENTS = [
    (r"\bwon't\b", "will not"),
    (r"\bcan't\b", "can not"),
    (r"\bshan't\b", "shall not"),
    (r"\blet's\b", "let us"),
    (r"\bain't\b", "aint"),
    (r"\by'all\b", "you all"),
    (r"\bwanna\b", "want to"),
    (r"\bgotta\b", "got to"),
    (r"\bgonna\b", "going to"),
    (r"\bi'ma\b", "i am going to"),
    (r"\bimma\b", "i am going to"),
    (r"\bwoulda\b", "would have"),
    (r"\bcoulda\b", "could have"),
    (r"\bshoulda\b", "should have"),
    (r"\bma'am\b", "madam"),
    (r"\bmr\b", "mister"),
    (r"\bmrs\b", "missus"),
    (r"\bms\b", "miss"),
    (r"\bdr\b", "doctor"),
    (r"\bprof\b", "professor"),
    (r"\bcapt\b", "captain"),
    (r"\bgov\b", "governor"),
    (r"\bsen\b", "senator"),
    (r"\brep\b", "representative"),
    (r"\bst\b", "saint"),
    (r"\bjr\b", "junior"),
    (r"\bsr\b", "senior"),
    (r"n't\b", " not"),
    (r"'re\b", " are"),
    (r"'s\b", " is"),
    (r"'d\b", " would"),
    (r"'ll\b", " will"),
    (r"'t\b", " not"),
    (r"'ve\b", " have"),
    (r"'m\b", " am"),
]
_REPLACEMENTS_RE = [(re.compile(p), r) for p, r in _REPLACEMENTS]

_BRITISH_TO_AMERICAN = {
    "colour": "color",
    "colours": "colors",
    "coloured": "colored",
    "favour": "favor",
    "favourite": "favorite",
    "favourites": "favorites",
    "honour": "honor",
    "humour": "humor",
    "labour": "labor",
    "neighbour": "neighbor",
    "neighbours": "neighbors",
    "behaviour": "behavior",
    "harbour": "harbor",
    "flavour": "flavor",
    "rumour": "rumor",
    "centre": "center",
    "centres": "centers",
    "theatre": "theater",
    "metre": "meter",
    "metres": "meters",
    "litre": "liter",
    "litres": "liters",
    "fibre": "fiber",
    "organise": "organize",
    "organised": "organized",
    "organisation": "organization",
    "realise": "realize",
    "realised": "realized",
    "recognise": "recognize",
    "recognised": "recognized",
    "apologise": "apologize",
    "analyse": "analyze",
    "analysed": "analyzed",
    "travelled": "traveled",
    "travelling": "traveling",
    "traveller": "traveler",
    "cancelled": "canceled",
    "modelling": "modeling",
    "jewellery": "jewelry",
    "grey": "gray",
    "defence": "defense",
    "offence": "offense",
    "licence": "license",
    "catalogue": "catalog",
    "dialogue": "dialog",
    "programme": "program",
    "programmes": "programs",
    "tyre": "tire",
    "tyres": "tires",
    "cheque": "check",
    "aluminium": "aluminum",
    "mum": "mom",
    "practise": "practice",
}

_ONES = {
    "zero": 0,
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
}
_TEENS = {
    "ten": 10,
    "eleven": 11,
    "twelve": 12,
    "thirteen": 13,
    "fourteen": 14,
    "fifteen": 15,
    "sixteen": 16,
    "seventeen": 17,
    "eighteen": 18,
    "nineteen": 19,
}
_TENS = {
    "twenty": 20,
    "thirty": 30,
    "forty": 40,
    "fifty": 50,
    "sixty": 60,
    "seventy": 70,
    "eighty": 80,
    "ninety": 90,
}
_SCALES = {"thousand": 10**3, "million": 10**6, "billion": 10**9, "trillion": 10**12}
_ORDINALS = {
    "first": "one",
    "second": "two",
    "third": "three",
    "fourth": "four",
    "fifth": "five",
    "sixth": "six",
    "seventh": "seven",
    "eighth": "eight",
    "ninth": "nine",
    "twelfth": "twelve",
}
for _w in [*_TEENS, *_TENS, "hundred", *_SCALES]:
    if _w != "twelve":
        _ORDINALS[(_w[:-1] + "ieth") if _w.endswith("y") else _w + "th"] = _w
_CURRENCIES = {
    "dollar": "$",
    "dollars": "$",
    "pound": "£",
    "pounds": "£",
    "euro": "€",
    "euros": "€",
}


def normalize_english(text: str) -> str:
    """Normalise English text for scoring (see the module docstring for the steps)."""
    s = text.lower()
    s = _BRACKETS.sub(" ", s)
    s = _FILLERS.sub(" ", s)
    s = re.sub(r"[’‘`]", "'", s)
    s = re.sub(r"\s+'", "'", s)  # "don 't" -> "don't"
    for pattern, replacement in _REPLACEMENTS_RE:
        s = pattern.sub(replacement, s)
    s = re.sub(r"(\d),(\d)", r"\1\2", s)  # 1,000 -> 1000
    s = re.sub(r"\.([^0-9]|$)", r" \1", s)  # periods not inside a number
    s = _remove_symbols(s, keep=".%$£€")
    s = _standardize_numbers(s.split())
    s = " ".join(_BRITISH_TO_AMERICAN.get(w, w) for w in s.split())
    s = re.sub(r"[.$£€](?![0-9])", " ", s)  # symbols left without a number
    s = re.sub(r"(?<![0-9])%", " ", s)
    return " ".join(s.split())


def _remove_symbols(s: str, keep: str) -> str:
    out = []
    for ch in unicodedata.normalize("NFKD", s):
        if ch in keep:
            out.append(ch)
        elif unicodedata.category(ch) == "Mn":
            continue  # a diacritic: café -> cafe
        elif unicodedata.category(ch)[0] in "PSZC":
            out.append(" ")
        else:
            out.append(ch)
    return "".join(out)


def _standardize_numbers(words: list[str]) -> str:
    out: list[str] = []
    i = 0
    while i < len(words):
        if _is_number_start(words[i]):
            value, suffix, i = _read_number(words, i)
            if i < len(words) and words[i] in _CURRENCIES and not suffix:
                out.append(_CURRENCIES[words[i]] + value)
                i += 1
            elif i < len(words) and words[i] in ("percent", "per-cent") and not suffix:
                out.append(value + "%")
                i += 1
            else:
                out.append(value + suffix)
        else:
            out.append(words[i])
            i += 1
    return " ".join(out)


def _is_number_start(w: str) -> bool:
    # A lone "first" .. "ninth" stays a word ("at first"); "twenty first" is a number.
    if w in _ORDINALS:
        return _ORDINALS[w] not in _ONES
    return w in _ONES or w in _TEENS or w in _TENS or w.isdigit()


def _read_number(words: list[str], i: int) -> tuple[str, str, int]:
    """One spoken number starting at words[i]: its digits, an ordinal suffix, the next index.

    ``total`` holds completed thousands groups, ``group`` the value below a thousand being
    built, ``last`` the kind of the previous word, which decides what may follow.
    """
    total, group, last, largest_scale = 0, 0, "", 10**15
    start = i
    while i < len(words):
        ordinal = words[i] in _ORDINALS
        kind, v = _kind(_ORDINALS.get(words[i], words[i]))
        if kind == "":
            break
        if i > start and not _can_follow(last, kind, group, total):
            break
        if kind == "scale" and v >= largest_scale:
            break  # "two thousand three thousand" is two numbers
        if kind in ("tens", "teens") and last in ("tens", "teens") and i > start:
            group = group * 100 + v  # a year: nineteen eighty, twenty twenty, nineteen twelve
            kind = "year_tens" if kind == "tens" else "year_full"
        elif kind in ("ones", "teens", "tens", "digits"):
            group += v
        elif kind == "hundred":
            group = (group or 1) * 100
        elif kind == "scale":
            total += (group or 1) * v
            group, largest_scale = 0, v
        last = kind
        i += 1
        if ordinal:
            n = total + group
            return str(n), _ordinal_suffix(n), i
        if i + 1 < len(words) and words[i] == "and" and last in ("hundred", "scale"):
            if _kind(_ORDINALS.get(words[i + 1], words[i + 1]))[0] in ("ones", "teens", "tens"):
                i += 1  # "one hundred and five"
    value = str(total + group)
    if i + 1 < len(words) and words[i] == "point" and words[i + 1] in _ONES:
        digits = []
        i += 1
        while i < len(words) and words[i] in _ONES:
            digits.append(str(_ONES[words[i]]))
            i += 1
        value += "." + "".join(digits)
    return value, "", i


def _kind(w: str) -> tuple[str, int]:
    if w in _ONES:
        return "ones", _ONES[w]
    if w in _TEENS:
        return "teens", _TEENS[w]
    if w in _TENS:
        return "tens", _TENS[w]
    if w == "hundred":
        return "hundred", 100
    if w in _SCALES:
        return "scale", _SCALES[w]
    if w.isdigit():
        return "digits", int(w)
    return "", 0


def _can_follow(last: str, kind: str, group: int, total: int) -> bool:
    """Whether a word of ``kind`` continues the number built so far (else a new one starts)."""
    if kind == "digits" or (last == "digits" and kind not in ("hundred", "scale")):
        return False
    if kind == "ones":
        return last in ("tens", "hundred", "scale", "year_tens")
    if kind in ("teens", "tens"):
        year = last in ("teens", "tens") and total == 0 and 10 <= group < 100
        return last in ("hundred", "scale") or year
    if kind == "hundred":
        return last in ("ones", "teens", "tens", "digits") and group < 100
    if kind == "scale":
        return group > 0 or last == "hundred"
    return False


def _ordinal_suffix(n: int) -> str:
    if 10 <= n % 100 <= 20:
        return "th"
    return {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
