import pytest

from searchengine.errors import SearchEngineError
from searchengine.query import parse_query


def test_operators_parse():
    q = parse_query('"summer sale" poster -winter 2:red')
    assert [t.text for t in q.required] == ["summer sale"]
    assert [t.text for t in q.negative] == ["winter"]
    assert {t.text: t.weight for t in q.positive} == {"summer sale": 1.0, "poster": 1.0, "red": 2.0}
    assert q.semantic_text == "summer sale poster red"
    assert q.required_match() == '"summer sale" NOT ("winter")'


@pytest.mark.parametrize(
    ("text", "descriptive"),
    [
        ("a dog runs on the beach", True),
        ("two girls play on a skateboard", True),
        ("Nike Men Blue T20 Indian Cricket Jersey", False),
        ("Blue Tshirts for Men", False),
        ("QX-7781-B", False),
    ],
)
def test_sentences_and_catalogue_phrases(text, descriptive):
    assert parse_query(text).descriptive is descriptive


def test_only_negatives_or_bad_weights_are_errors():
    with pytest.raises(SearchEngineError, match="no searchable word"):
        parse_query("-winter -snow")
    with pytest.raises(SearchEngineError, match="weight must be positive"):
        parse_query("0:cat")
