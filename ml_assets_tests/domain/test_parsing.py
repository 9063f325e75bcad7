import pytest

from ml_assets.domain.contract import FILE_ERROR, PARSE_ERRORS, SOURCE_ROW, FileRule
from ml_assets.domain.parsing import (
    LandingFileError,
    parse_landing_file,
    refuse_unreadable,
    rejection_rows,
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
