"""lucid.core.columns: the usual columns of an uploaded table found by name."""

import pytest

from lucid.core.columns import ITEM_COLUMNS, RATING_COLUMNS, TIME_COLUMNS, USER_COLUMNS, find_column

MOVIELENS = ["userId", "movieId", "rating", "timestamp"]


def test_movielens_columns_are_found():
    assert find_column(MOVIELENS, USER_COLUMNS) == "userId"
    assert find_column(MOVIELENS, ITEM_COLUMNS) == "movieId"
    assert find_column(MOVIELENS, RATING_COLUMNS) == "rating"
    assert find_column(MOVIELENS, TIME_COLUMNS) == "timestamp"


@pytest.mark.parametrize("name", ["user_id", "User ID", "USER-ID", "userid", "user id"])
def test_case_spaces_underscores_and_dashes_are_ignored(name):
    assert find_column(["score", name], USER_COLUMNS) == name


def test_the_order_of_the_candidates_wins_over_the_order_of_the_columns():
    columns = ["customer_id", "user"]
    assert find_column(columns, USER_COLUMNS) == "user"  # "user" is the first candidate
    assert find_column(columns, ("customer_id", "user")) == "customer_id"
    assert find_column(["stars", "rating"], RATING_COLUMNS) == "rating"


def test_the_first_of_equal_columns_is_returned():
    assert find_column(["User", "user"], USER_COLUMNS) == "User"


def test_none_when_no_column_matches():
    assert find_column(["applicant", "amount"], USER_COLUMNS) is None
    assert find_column([], ITEM_COLUMNS) is None
    assert find_column(["users"], USER_COLUMNS) is None  # a near miss is no match


def test_non_string_column_names_are_returned_as_strings():
    assert find_column([0, 1, "rating"], RATING_COLUMNS) == "rating"
    assert find_column([2024, "x"], ("2024",)) == "2024"
