import pandas as pd
import pytest

from ml_assets.domain.contract import FILE_ERROR, PARSE_ERRORS, SOURCE_ROW, FileRule
from ml_assets.domain.parsing import (
    LandingFileError,
    numbers_read_by_parser,
    parse_landed,
    parse_landing_file,
    read_as_text,
    refuse_unreadable,
    rejection_rows,
    type_rows,
)

SOURCE = "landing/flights_2013-01-15.csv"
DAY = "2013-01-15"


def parse(data: bytes):
    return parse_landing_file(data, SOURCE, DAY)


def test_real_day_parses_into_typed_rows(day_csv, demo_flights):
    parsed = parse(day_csv())
    expected = int((demo_flights["_date"] == DAY).sum())
    assert len(parsed.rows) == expected == 894
    assert str(parsed.rows["distance"].dtype) == "float64"
    assert str(parsed.rows["sched_dep_time"].dtype) == "Int64"
    assert parsed.rows[SOURCE_ROW].iloc[0] == 2  # line 1 is the header
    assert parsed.rows[SOURCE_ROW].iloc[-1] == expected + 1
    assert (parsed.rows[PARSE_ERRORS] == "").all()
    assert parsed.rows[FILE_ERROR].isna().all()
    assert len(parsed.sha256) == 64
    assert parsed.extra_columns == ()


def rule_of(data: bytes) -> FileRule:
    with pytest.raises(LandingFileError) as caught:
        parse(data)
    assert SOURCE in str(caught.value)
    assert caught.value.rule.value in str(caught.value)
    return caught.value.rule


def test_file_level_rules(day_csv):
    good = day_csv()
    header = good.split(b"\n", 1)[0] + b"\n"
    assert rule_of(b"") is FileRule.EMPTY_FILE
    assert rule_of(b"  \n") is FileRule.EMPTY_FILE
    assert rule_of(header) is FileRule.HEADER_ONLY
    assert rule_of(good[: len(good) // 2]) is FileRule.TRUNCATED
    assert rule_of(good.replace(b",", b";")) is FileRule.WRONG_DELIMITER
    assert rule_of(good[:100] + b"\xff\xfe" + good[100:]) is FileRule.NOT_UTF8
    assert rule_of(good.replace(b"distance", b"dist", 1)) is FileRule.MISSING_COLUMNS


def test_row_with_too_many_fields_is_malformed(day_csv):
    lines = day_csv().split(b"\n")
    lines[3] = lines[3] + b",1,2,3"
    assert rule_of(b"\n".join(lines)) is FileRule.MALFORMED_CSV


def test_extra_columns_are_accepted_and_recorded(day_csv):
    lines = day_csv().decode().splitlines()
    widened = [lines[0] + ",gate"] + [line + ",B12" for line in lines[1:]]
    parsed = parse(("\n".join(widened) + "\n").encode())
    assert parsed.extra_columns == ("gate",)
    assert "gate" not in parsed.rows.columns


def test_wrong_type_is_recorded_on_the_row_not_raised(day_csv):
    lines = day_csv().decode().splitlines()
    header = lines[0].split(",")
    cells = lines[1].split(",")
    cells[header.index("distance")] = "abc"
    lines[1] = ",".join(cells)
    parsed = parse(("\n".join(lines) + "\n").encode())
    assert parsed.rows.loc[0, PARSE_ERRORS] == "distance=abc;"
    assert parsed.rows["distance"].isna().sum() == 1
    assert (parsed.rows.loc[1:, PARSE_ERRORS] == "").all()


# Cells the CSV parser and to_numeric might read differently: signs, exponents, spaces, quotes,
# NA spellings, overflow, hex, separators, booleans, more digits than a float holds.
TRICKY_CELLS = [
    " 5", "5 ", "+5", "1e3", "1E3", ".5", "5.", "-0", "0.1", "2.675", "1e-400", "0.30000000000000004",
    "9007199254740993", "123456789012345678901234567890", "1.0000000000000002", '"7"', "5\t",
    "inf", "-inf", "Infinity", "iNf", "1e400", "1e13", "nan", "NaN", "NA", "N/A", "null", "None",
    "#N/A", "-nan", "1.#QNAN", "", "  ", '" "', '""', "0x1A", "1_000", '"0,5"', "5d", "1e", "--5",
    "+-5", "1 000", "nan(1)", "TRUE", "True", "true", "FALSE", "false", '"True"', "١٢",
]  # fmt: skip


def with_cell(day: bytes, column: str, cell: str, row: int = 1) -> bytes:
    lines = day.decode().splitlines()
    cells = lines[row].split(",")
    cells[lines[0].split(",").index(column)] = cell
    lines[row] = ",".join(cells)
    return ("\n".join(lines) + "\n").encode()


@pytest.mark.parametrize("column", ["distance", "flight"])  # a float and an integer column
def test_numbers_read_by_the_parser_equal_the_text_path_cell_by_cell(day_csv, column):
    day = day_csv()
    for cell in TRICKY_CELLS:
        data = with_cell(day, column, cell)
        text = data.decode()
        by_text = type_rows(read_as_text(text, SOURCE), SOURCE, DAY)
        pd.testing.assert_frame_equal(parse(data).rows, by_text, check_exact=True, obj=repr(cell))


def test_cells_the_parser_cannot_type_go_the_text_path_and_are_named(day_csv):
    day = day_csv()
    assert numbers_read_by_parser(day.decode(), SOURCE, DAY) is not None
    for cell, named in [("abc", "abc"), ("inf", "inf"), ("1e400", "1e400"), ("2.5", "2.5")]:
        text = with_cell(day, "flight", cell).decode()
        assert numbers_read_by_parser(text, SOURCE, DAY) is None, cell
        assert parse(text.encode()).rows.loc[0, PARSE_ERRORS] == f"flight={named};"
    # A number column of booleans only, the parser would read as 1.0 and 0.0: the file never reaches it.
    for row in range(1, day.count(b"\n")):
        day = with_cell(day, "distance", "TRUE" if row % 2 else "false", row)
    rows = parse(day).rows
    assert rows.loc[0, PARSE_ERRORS] == "distance=TRUE;"
    assert rows.loc[1, PARSE_ERRORS] == "distance=false;"
    assert rows["distance"].isna().all()
    # A boolean-looking text in a text column is kept as text.
    assert parse(with_cell(day, "tailnum", "TRUE")).rows.loc[0, "tailnum"] == "TRUE"


def test_refuse_unreadable_before_reading():
    refuse_unreadable(SOURCE, 1000, max_bytes=2000)
    with pytest.raises(LandingFileError, match="too_large") as caught:
        refuse_unreadable(SOURCE, 100_000_000, max_bytes=64 * 1024 * 1024)
    assert caught.value.rule is FileRule.TOO_LARGE
    with pytest.raises(LandingFileError, match="missing_file"):
        refuse_unreadable(SOURCE, None, max_bytes=2000)


def test_rejection_becomes_one_placeholder_row():
    error = LandingFileError(SOURCE, FileRule.NOT_UTF8, "byte 7")
    rows = rejection_rows(error, DAY)
    assert len(rows) == 1
    assert rows.loc[0, FILE_ERROR] == "not_utf8: byte 7"
    assert rows.loc[0, "_source_file"] == SOURCE
    assert rows.loc[0, SOURCE_ROW] == 0


def test_a_refusal_survives_pickling_and_parse_landed_returns_it(day_csv):
    """Worker processes hand each file's outcome back pickled: a refusal must arrive whole."""
    import pickle

    error = LandingFileError(SOURCE, FileRule.TRUNCATED, "the file does not end with a newline")
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.source, copy.rule, copy.detail) == (error.source, error.rule, error.detail)
    assert str(copy) == str(error)

    parsed = parse_landed((SOURCE, DAY, day_csv()))
    assert len(parsed.rows) == 894
    assert parsed.source == SOURCE
    refused = parse_landed((SOURCE, DAY, day_csv()[:-1]))
    assert isinstance(refused, LandingFileError)
    assert refused.rule is FileRule.TRUNCATED
    assert parse_landed((SOURCE, DAY, error)) is error  # refused unread: passed through
