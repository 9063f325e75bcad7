from ml_assets.demo import main, seed
from ml_assets.domain.contract import day_from_file_name


def test_seed_lands_real_days_by_the_contract(tmp_path, demo_flights):
    written = seed(tmp_path, "2013-02-27", 3)
    assert [p.name for p in written] == [
        "flights_2013-02-27.csv",
        "flights_2013-02-28.csv",
        "flights_2013-03-01.csv",
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [*(p.name for p in written), "weather.csv", "planes.csv"]
    )  # no *.tmp left behind
    lines = written[1].read_text().splitlines()
    assert len(lines) - 1 == int((demo_flights["_date"] == "2013-02-28").sum())
    assert lines[0].startswith("year,month,day,dep_time")


def test_seed_if_empty_keeps_existing_files(tmp_path, capsys):
    main(["seed", "--days", "1", "--to", str(tmp_path)])
    main(["seed", "--days", "2", "--to", str(tmp_path), "--if-empty"])
    assert len(list(tmp_path.glob("flights_*.csv"))) == 1
    assert "not seeding" in capsys.readouterr().out


def test_file_names_map_to_days():
    assert day_from_file_name("flights_2013-01-05.csv") == "2013-01-05"
    assert day_from_file_name("flights_2013-01-05.csv.tmp") is None
    assert day_from_file_name("flights_jan.csv") is None
