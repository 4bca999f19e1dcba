"""``--where`` filters: the SQL-like null rule, chained comparisons, and errors that name the problem."""

import pytest

from runstore.where import WhereError, row_filter

ROWS = [
    {"item_id": "a", "status": "ok", "score": 1.5, "seed": 3},
    {"item_id": "b", "status": "ok", "score": None, "seed": 4},
    {"item_id": "c", "status": "failed", "score": 3.0, "seed": -1},
]
COLUMNS = ROWS[0].keys()


def ids(expression: str) -> list[str]:
    keep = row_filter(expression, COLUMNS)
    return [r["item_id"] for r in ROWS if keep(r)]


def test_comparisons_and_logic():
    assert ids('status == "ok" and score < 2') == ["a"]
    assert ids("score >= 1.5 or seed == 4") == ["a", "b", "c"]
    assert ids('not status == "ok"') == ["c"]
    assert ids('item_id in ["a", "c"]') == ["a", "c"]
    assert ids('item_id not in ("a",)') == ["b", "c"]
    assert ids("1 < score < 2") == ["a"]
    assert ids("seed == -1") == ["c"]


def test_null_never_matches_a_comparison():
    assert ids("score < 100") == ["a", "c"]
    assert ids("score != 1.5") == ["c"]


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("scor < 2", "there is no column 'scor'"),
        ("score <", "not a valid expression"),
        ("__import__('os').system('true')", "is not supported"),
        ("score.real < 2", "is not supported"),
    ],
)
def test_bad_expressions_say_what_is_wrong(expression, message):
    with pytest.raises(WhereError, match=message):
        row_filter(expression, COLUMNS)
