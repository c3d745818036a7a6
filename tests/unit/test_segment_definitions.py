"""Segment definitions: the language, its errors, hostile input, and the SQL it compiles to —
run on a real DuckDB table so the semantics (NULLs included) are checked, not the text."""

from __future__ import annotations

import datetime as dt

import duckdb
import pyarrow as pa
import pytest

from c360.batch import catalogue
from c360.segments import DefinitionError, Kind, compile_sql, fields_of, parse
from c360.segments import definition as d

# The catalogue's published columns, plus a feature the catalogue does not know yet (a new
# model's output): the field list is whatever schema is in use.
SCHEMA = catalogue.schema().append(pa.field("lifetime_value_forecast", pa.float64()))
FIELDS = fields_of(SCHEMA)

PEOPLE = pa.table(
    {
        "person_id": ["p1", "p2", "p3", "p4"],
        "total_lifetime_spend": [900.0, 200.0, None, 650.0],
        "churn_risk": [0.9, 0.8, 0.95, 0.1],
        "marketing_opt_in": [True, False, None, True],
        "favourite_category": ["books", "garden", None, "O'Brien's"],
        "signup_date": [dt.date(2025, 1, 5), dt.date(2026, 3, 1), None, dt.date(2024, 7, 9)],
        "last_visit_at": [
            dt.datetime(2026, 12, 1, 10),
            None,
            dt.datetime(2026, 11, 1),
            dt.datetime(2026, 12, 5, 23),
        ],
        "number_of_orders": [5, 1, 0, 3],
    }
)


def members(text: str) -> list[str]:
    compiled = compile_sql(parse(text, FIELDS))
    conn = duckdb.connect()
    conn.register("people", PEOPLE)
    sql = f"SELECT person_id FROM people WHERE {compiled.sql} ORDER BY person_id"
    return [row[0] for row in conn.execute(sql, list(compiled.params)).fetchall()]


def test_field_list_follows_the_schema() -> None:
    assert FIELDS["churn_risk"] is Kind.NUMBER
    assert FIELDS["marketing_opt_in"] is Kind.BOOL
    assert FIELDS["signup_date"] is Kind.DATE
    assert FIELDS["last_visit_at"] is Kind.TIMESTAMP
    assert FIELDS["favourite_category"] is Kind.TEXT
    assert "person_id" not in FIELDS
    assert parse("churn_risk > 0.5", FIELDS).fields == ("churn_risk",)  # catalogued
    assert parse("lifetime_value_forecast > 5", FIELDS).fields == ("lifetime_value_forecast",)
    with pytest.raises(DefinitionError):
        parse("lifetime_value_forecast > 5", fields_of(catalogue.schema()))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("churn_risk > 0.7 and total_lifetime_spend > 500 and marketing_opt_in", ["p1"]),
        ("churn_risk > 0.7 AND total_lifetime_spend > 500 OR number_of_orders = 3", ["p1", "p4"]),
        ("churn_risk > 0.7 and (total_lifetime_spend > 500 or number_of_orders = 3)", ["p1"]),
        ("not marketing_opt_in", ["p2"]),  # NULL is neither
        ("marketing_opt_in = false", ["p2"]),
        ("marketing_opt_in != true", ["p2"]),
        ("total_lifetime_spend is null", ["p3"]),
        ("total_lifetime_spend is not null", ["p1", "p2", "p4"]),
        ("not total_lifetime_spend > 500", ["p2"]),  # a null spend matches neither
        ("favourite_category in ('books', \"garden\")", ["p1", "p2"]),
        ("favourite_category not in ('books')", ["p2", "p4"]),
        ("favourite_category = 'O''Brien''s'", ["p4"]),
        ("number_of_orders between 1 and 3", ["p2", "p4"]),
        ("number_of_orders not between 1 and 3", ["p1", "p3"]),
        ("signup_date >= '2025-01-01'", ["p1", "p2"]),
        ("signup_date between '2024-01-01' and '2025-12-31'", ["p1", "p4"]),
        ("last_visit_at > '2026-12-05T12:00:00Z'", ["p4"]),
        ("last_visit_at > '2026-12-05T13:00:00+01:00'", ["p4"]),  # 12:00 UTC
        ("churn_risk >= 9.5e-1", ["p3"]),
        ("number_of_orders <> 0 and number_of_orders == 5", ["p1"]),
        ("not not (number_of_orders > -1.5)", ["p1", "p2", "p3", "p4"]),
    ],
)
def test_definitions_select_what_they_say(text: str, expected: list[str]) -> None:
    assert members(text) == expected


def test_values_are_bound_never_pasted() -> None:
    compiled = compile_sql(parse("favourite_category = 'x'' OR 1=1 --' or churn_risk > 2", FIELDS))
    assert "OR 1=1" not in compiled.sql
    assert "'" not in compiled.sql
    assert compiled.params == ("x' OR 1=1 --", 2)
    assert members("favourite_category = 'x'' OR 1=1 --'") == []
    named = compile_sql(parse("churn_risk in (1, 2)", FIELDS), d.colon())
    assert named.sql == '"churn_risk" IN (:seg_0, :seg_1)'
    assert named.named == {"seg_0": 1, "seg_1": 2}


def error(text: str) -> DefinitionError:
    with pytest.raises(DefinitionError) as caught:
        parse(text, FIELDS)
    return caught.value


def test_unknown_field_suggests_the_nearest() -> None:
    e = error("churn_risk > 0.7 and total_spend > 500")
    assert e.position == len("churn_risk > 0.7 and ")
    assert e.token == "total_spend"
    assert "did you mean 'total_lifetime_spend'" in str(e)
    assert e.pointer.splitlines()[1].index("^") == e.position
    assert "did you mean 'churn_risk'" in str(error("churn_rsik > 1"))


@pytest.mark.parametrize(
    ("text", "position", "problem"),
    [
        ("churn_risk >", 12, "expected a number"),
        ("churn_risk > 0.7 and", 20, "expected a field"),
        ("churn_risk > 'high'", 13, "churn_risk is a number"),
        ("favourite_category > 5", 21, "is a text"),
        ("signup_date > '2025-13-01'", 14, "ISO date"),
        ("marketing_opt_in > true", 17, "compare it with = or !="),
        ("churn_risk", 10, "expected a comparison"),
        ("churn_risk > total_lifetime_spend", 13, "not other fields"),
        ("(churn_risk > 1", 15, "expected ')'"),
        ("churn_risk > 1)", 14, "expected and, or, or the end"),
        ("churn_risk not > 1", 15, "expected in or between"),
        ("churn_risk between 1 or 2", 21, "expected and"),
        ("favourite_category = 'books", 21, "unterminated"),
        ("", 0, "expected a condition"),
        ("churn_risk > 1e999", 13, "out of range"),
        ("number_of_orders > 99999999999999999999", 19, "out of range"),
        ("churn_risk is 5", 14, "expected null"),
    ],
)
def test_errors_point_at_the_token(text: str, position: int, problem: str) -> None:
    e = error(text)
    assert e.position == position, str(e)
    assert problem in str(e)


@pytest.mark.parametrize(
    ("text", "position"),
    [
        ("churn_risk > 1; DROP TABLE person", 14),
        ("churn_risk > 1 -- comment", 15),
        ("churn_risk > 1 /* x */", 15),
        ("__import__('os').system('id')", 0),
        ("churn_risk.__class__ > 1", 10),
        ("churn_risk[0] > 1", 10),
        ("len(favourite_category) > 1", 0),
        ("churn_risk(1) > 1", 10),
        ("lambda: 1", 0),
        ("churn_risk > 1 + 1", 15),
        ("churn_risk > `x`", 13),
        ('"churn_risk" > 1', 0),  # a quoted name is a text value, not a field
        ("person_id = 'p1'", 0),  # not in the field list
        ("churn_risk > @p", 13),
        ("churn_risk > $1", 13),
        ("churn_risk > :x", 13),
        ("churn_risk > 1 union select 1", 15),
        ("chürn_risk > 1", 0),  # one (unknown) name: "did you mean 'churn_risk'?"
        ("churn_risk > 1\x00", 14),
    ],
)
def test_hostile_definitions_are_refused_where_they_go_wrong(text: str, position: int) -> None:
    assert error(text).position == position


def test_huge_definitions_are_refused_cheaply() -> None:
    assert "too long" in str(error("churn_risk > 1 and " * 300 + "churn_risk > 1"))
    assert "tokens" in str(error(" or ".join(["age>1"] * 300)))
    assert "nested deeper" in str(error("(" * 40 + "churn_risk > 1" + ")" * 40))
    assert "nested deeper" in str(error("not " * 40 + "marketing_opt_in"))
    values = ", ".join(["1"] * (d.MAX_IN_VALUES + 1))
    assert "values in one list" in str(error(f"churn_risk in ({values})"))
    assert "longer than" in str(error(f"favourite_category = '{'x' * (d.MAX_TEXT + 1)}'"))
    many = " or ".join(["churn_risk > 1"] * 100)  # within the limits: parses
    assert len(compile_sql(parse(many, FIELDS)).params) == 100


def test_keywords_are_case_blind_and_fields_exact() -> None:
    e = error("Churn_risk > 0.9")
    assert "did you mean 'churn_risk'" in str(e)
    assert members("churn_risk > 0.85 AnD NOT marketing_opt_in IS NOT NULL") == ["p3"]
