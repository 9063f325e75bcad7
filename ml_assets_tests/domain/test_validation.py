import string

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ml_assets.domain.contract import FLIGHT_COLUMNS, LABEL, RowReason
from ml_assets.domain.parsing import parse_landing_file, type_rows
from ml_assets.domain.validation import (
    QUARANTINE_REASON,
    delay_label,
    row_problems,
    validate_flights,
)

DAY = "2013-01-15"


def typed_day(day_csv) -> pd.DataFrame:
    return parse_landing_file(day_csv(DAY), "f.csv", DAY).rows


def test_real_day_is_all_valid_and_labelled(day_csv):
    rows = typed_day(day_csv)
    result = validate_flights(rows)
    assert len(result.valid) == len(rows) == 894
    assert result.quarantine.empty
    assert set(result.valid[LABEL].unique()) <= {0, 1}
    assert (result.valid["flight_date"] == DAY).all()


def test_each_rule_quarantines_with_its_reason(day_csv):
    rows = typed_day(day_csv)
    rows.loc[0, "distance"] = -5.0
    rows.loc[1, "day"] = 16  # the row says 2013-01-16 inside the 2013-01-15 file
    rows.loc[2, "carrier"] = pd.NA
    rows.loc[3, "_parse_errors"] = "distance=abc;"
    rows.loc[4, "sched_dep_time"] = 2575
    rows = pd.concat([rows, rows.iloc[[10]]], ignore_index=True)  # an exact duplicate row
    result = validate_flights(rows)
    reasons = result.quarantine.set_index("_source_row")[QUARANTINE_REASON]
    assert reasons.loc[rows.loc[0, "_source_row"]] == RowReason.OUT_OF_RANGE
    assert reasons.loc[rows.loc[1, "_source_row"]] == RowReason.DATE_MISMATCH
    assert reasons.loc[rows.loc[2, "_source_row"]] == RowReason.MISSING_REQUIRED
    assert reasons.loc[rows.loc[3, "_source_row"]] == RowReason.TYPE_ERROR
    assert reasons.loc[rows.loc[4, "_source_row"]] == RowReason.OUT_OF_RANGE
    assert result.reason_counts == {
        "date_mismatch": 1,
        "duplicate_key": 1,
        "missing_required": 1,
        "out_of_range": 2,
        "type_error": 1,
    }
    assert len(result.valid) + len(result.quarantine) == len(rows)
    detail = result.quarantine.set_index("_source_row")["detail"]
    assert "distance" in detail.loc[rows.loc[0, "_source_row"]]


def test_a_days_rows_validate_the_same_in_a_range_as_alone(day_csv):
    """A row of the day before's file carrying this day's date and flight key is that file's date
    mismatch; it must not turn this day's own row into a duplicate in a range run."""
    before = parse_landing_file(day_csv("2013-01-14"), "a.csv", "2013-01-14").rows
    day = typed_day(day_csv)
    for column in ("carrier", "flight", "origin", "sched_dep_time", "tailnum", "year", "month", "day"):
        before.loc[0, column] = day.loc[0, column]
    alone = validate_flights(day)
    in_range = validate_flights(pd.concat([before, day], ignore_index=True))
    quarantined = in_range.quarantine
    assert alone.quarantine.empty
    assert quarantined["landing_day"].tolist() == ["2013-01-14"]
    assert quarantined[QUARANTINE_REASON].tolist() == [RowReason.DATE_MISMATCH]
    assert in_range.valid[in_range.valid["landing_day"] == DAY].reset_index(drop=True).equals(alone.valid)


def test_blank_codes_are_missing_and_each_detail_names_its_row(day_csv):
    rows = typed_day(day_csv)
    rows.loc[0, "origin"] = "  "  # whitespace only: as missing as a null
    rows.loc[1, "dest"] = " JFK"  # padded but present: not missing
    rows.loc[2, "carrier"] = pd.NA
    rows.loc[2, "origin"] = ""
    rows.loc[3, "month"] = 2
    rows.loc[3, "day"] = 30  # no such date
    rows.loc[4, "_file_error"] = "not_utf8: byte 7"
    rows.loc[5, "flight"] = 0
    rows.loc[5, "sched_dep_time"] = 2460
    detail = validate_flights(rows).quarantine.set_index("_source_row")["detail"]
    source_row = rows["_source_row"]
    assert detail.loc[source_row[0]] == "null: origin;"
    assert detail.loc[source_row[2]] == "null: carrier;origin;"
    assert detail.loc[source_row[3]] == f"row date invalid is not file day {DAY}"
    assert detail.loc[source_row[4]] == "not_utf8: byte 7"
    assert detail.loc[source_row[5]] == "out of range: sched_dep_time;flight;"
    assert source_row[1] not in detail.index
    assert len(detail) == 5
    # Rows under any index (a slice of a range) are judged the same.
    shifted = validate_flights(rows.set_axis(rows.index + 7))
    pd.testing.assert_frame_equal(shifted.quarantine, validate_flights(rows).quarantine)


def test_label_counts_late_cancelled_and_diverted():
    frame = pd.DataFrame(
        {
            "dep_time": [600.0, 600.0, np.nan, 600.0, 600.0],
            "arr_delay": [14.0, 15.0, np.nan, np.nan, -3.0],
        }
    )
    assert delay_label(frame).tolist() == [0, 1, 1, 1, 0]


cell = st.one_of(
    st.none(),
    st.text(alphabet=string.printable + "é€", max_size=8),
    st.integers(-5000, 5000).map(str),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.fixed_dictionaries(dict.fromkeys(FLIGHT_COLUMNS, cell)), max_size=25))
def test_validation_never_raises_and_loses_no_row(records):
    frame = pd.DataFrame(records, columns=list(FLIGHT_COLUMNS), dtype=object)
    rows = type_rows(frame, "generated.csv", DAY)
    result = validate_flights(rows)
    assert len(result.valid) + len(result.quarantine) == len(frame)
    assert result.quarantine[QUARANTINE_REASON].notna().all()
    reason, _ = row_problems(rows)
    assert int(reason.isna().sum()) == len(result.valid)
