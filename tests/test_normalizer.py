import pytest

from auden.decoding.normalizer import normalize_english

CASES = [
    ("Mr. Smith won't pay twenty-five dollars!", "mister smith will not pay $25"),
    ("Hmm, I (laughs) think [noise] it's the colour grey.", "i think it is the color gray"),
    ("nineteen eighty four", "1984"),
    ("twenty twenty one", "2021"),
    ("nineteen twelve", "1912"),
    ("one hundred and five", "105"),
    ("two thousand three hundred forty five", "2345"),
    ("five hundred thousand people", "500000 people"),
    ("1,000 people and 2 million dollars", "1000 people and $2000000"),
    ("three point one four", "3.14"),
    ("ten percent", "10%"),
    ("the twenty first century", "the 21st century"),
    ("the hundredth time", "the 100th time"),
    ("at first, the second one", "at first the second 1"),
    ("one two three", "1 2 3"),
    ("It's $5.50, isn't it?", "it is $5.50 is not it"),
    ("Café  naïve   Résumé", "cafe naive resume"),
    ("I've   got   99 problems.", "i have got 99 problems"),
    ("We're gonna wanna go; you'll see.", "we are going to want to go you will see"),
    ("Dr. Jones  — the U.K.'s   best?", "doctor jones the u k is best"),
    ("  ", ""),
]


@pytest.mark.parametrize("text,expected", CASES)
def test_english_normalizer_on_a_fixed_list(text, expected):
    assert normalize_english(text) == expected


def test_normalizer_makes_spelled_and_written_forms_agree():
    assert normalize_english("Twenty-Five Dollars") == normalize_english("$25")
    assert normalize_english("We'll meet at 10") == normalize_english("we will meet at ten")
