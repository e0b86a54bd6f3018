"""Other engines read the lake trailhouse writes: Python's deltalake, pyarrow, DuckDB and polars.

Run by the Rust integration test `interop` (which builds the binary), with TRAILHOUSE_BIN set.
"""
import datetime
import json
import os
import re
import subprocess
import time
from collections import Counter
from pathlib import Path

import duckdb
import pytest
from deltalake import DeltaTable

ROOT = Path(__file__).resolve().parents[2]
BIN = os.environ.get("TRAILHOUSE_BIN", str(ROOT / "target" / "debug" / "trailhouse"))
# A lake URL in an S3 endpoint the Rust test `interop` serves (with AWS_ENDPOINT_URL and keys).
S3_LAKE = os.environ.get("TRAILHOUSE_TEST_S3_LAKE")


def trailhouse(lake, *args):
    return subprocess.run([BIN, "--lake", str(lake), *args], capture_output=True, text=True)


@pytest.fixture(scope="module")
def lake(tmp_path_factory):
    lake = tmp_path_factory.mktemp("interop") / "lake"
    run = trailhouse(lake, "ingest", "--json", str(ROOT / "sample-logs"))
    assert run.returncode == 1, run.stderr  # the sample trail has one truncated file
    report = json.loads(run.stdout.strip().splitlines()[-1])
    assert report["records_written"] > 0
    return lake, report


def our_counts(lake):
    run = trailhouse(lake, "sql", "--format", "json",
                     "SELECT CAST(day AS VARCHAR) AS day, region, count(*) AS n FROM cloudtrail GROUP BY 1, 2")
    assert run.returncode == 0, run.stderr
    return {(r["day"], r["region"]): r["n"] for r in json.loads(run.stdout)}


def test_deltalake_reads_rows_and_partitions(lake):
    lake, report = lake
    dt = DeltaTable(str(lake / "cloudtrail"))
    assert dt.metadata().partition_columns == ["day"]
    # The bounds our queries prune by are where other readers look for them.
    assert dt.metadata().configuration["delta.dataSkippingStatsColumns"] == "eventtime,region"
    table = dt.to_pyarrow_table()
    assert table.num_rows == report["records_written"]
    theirs = Counter(zip((str(d) for d in table.column("day").to_pylist()), table.column("region").to_pylist()))
    assert dict(theirs) == our_counts(lake)
    # The idempotency marker of the last batch is visible to other writers' tooling.
    assert dt.transaction_version("trailhouse-ingest") == report["table_version"]


def test_pyarrow_dataset_partition_filter(lake):
    lake, _ = lake
    import pyarrow.dataset as ds
    dt = DeltaTable(str(lake / "cloudtrail"))
    dataset = dt.to_pyarrow_dataset()
    rows = dataset.to_table(filter=(ds.field("region") == "eu-west-1")).num_rows
    ours = sum(n for (_, region), n in our_counts(lake).items() if region == "eu-west-1")
    assert rows == ours > 0


def test_pyarrow_filters_a_compacted_lake(tmp_path):
    import pyarrow.dataset as ds
    # One file per batch: the days that received four or more are compacted by the ingest;
    # in the second lake, by `trailhouse compact`.
    by_ingest, by_command = tmp_path / "by-ingest", tmp_path / "by-command"
    run = trailhouse(by_ingest, "ingest", "--json", "--batch-files", "1", str(ROOT / "sample-logs"))
    assert run.returncode == 1, run.stderr
    assert json.loads(run.stdout.strip().splitlines()[-1])["partitions_compacted"] > 0
    run = trailhouse(by_command, "ingest", "--batch-files", "1", "--no-compact", str(ROOT / "sample-logs"))
    assert run.returncode == 1, run.stderr
    run = trailhouse(by_command, "compact")
    assert run.returncode == 0 and "compacted" in run.stderr, run.stderr
    for lake in (by_ingest, by_command):
        dataset = DeltaTable(str(lake / "cloudtrail")).to_pyarrow_dataset()
        counts = our_counts(lake)
        for region in {region for (_, region) in counts}:
            rows = dataset.to_table(filter=(ds.field("region") == region)).num_rows
            ours = sum(n for (_, r), n in counts.items() if r == region)
            assert rows == ours > 0, (lake, region)


def test_duckdb_reads_the_committed_files(lake):
    lake, report = lake
    dt = DeltaTable(str(lake / "cloudtrail"))
    files = dt.file_uris()
    con = duckdb.connect()
    n, deleted = con.execute(
        "SELECT count(*), count(*) FILTER (WHERE eventname = 'DeleteBucket') "
        "FROM read_parquet(?, hive_partitioning = true)", [files]).fetchone()
    assert n == report["records_written"]
    assert deleted == 1
    who = con.execute(
        "SELECT useridentity.arn FROM read_parquet(?, hive_partitioning = true) WHERE eventname = 'DeleteBucket'",
        [files]).fetchone()[0]
    assert who.endswith("assumed-role/DataAdmin/bob-maintenance")


@pytest.fixture(scope="module")
def s3_lake():
    if not S3_LAKE:
        pytest.skip("no S3 endpoint: the Rust test `interop` serves one")
    run = trailhouse(S3_LAKE, "ingest", "--json", str(ROOT / "sample-logs"))
    assert run.returncode == 1, run.stderr  # the sample trail has one truncated file
    return json.loads(run.stdout.strip().splitlines()[-1])


def test_deltalake_reads_the_lake_in_s3(s3_lake):
    report = s3_lake
    options = {k: os.environ[k] for k in
               ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION")}
    options["AWS_ALLOW_HTTP"] = "true"
    dt = DeltaTable(S3_LAKE + "/cloudtrail", storage_options=options)
    assert dt.metadata().partition_columns == ["day"]
    table = dt.to_pyarrow_table()
    assert table.num_rows == report["records_written"] > 0
    theirs = Counter(zip((str(d) for d in table.column("day").to_pylist()), table.column("region").to_pylist()))
    assert dict(theirs) == our_counts(S3_LAKE)
    assert dt.transaction_version("trailhouse-ingest") == report["table_version"]


def polars_frame(lake, *args, **env):
    """The frame `trailhouse ddl polars` names, from running the Python it prints."""
    run = subprocess.run([BIN, "--lake", str(lake), "ddl", "polars", *args], capture_output=True, text=True,
                         env={**os.environ, **env})
    assert run.returncode == 0, run.stderr
    scope = {}
    exec(run.stdout, scope)
    return scope


def test_polars_reads_the_tables_ddl_names(lake):
    import polars as pl
    lake, report = lake
    events = polars_frame(lake)["cloudtrail"]
    assert events.select(pl.len()).collect().item() == report["records_written"] > 0
    per_partition = events.group_by(pl.col("day").cast(pl.Utf8), "region").len().collect()
    assert {(d, r): n for d, r, n in per_partition.iter_rows()} == our_counts(lake)


def test_polars_reads_the_quarantine_ddl_names(tmp_path):
    import polars as pl
    lake = tmp_path / "corpus-lake"  # the corpus has records that go to quarantine
    run = trailhouse(lake, "ingest", "--json", str(ROOT / "tests" / "corpus"))
    assert run.returncode in (0, 1), run.stderr
    quarantined = polars_frame(lake, "--table", "quarantine", "--name", "q")["q"]
    run = trailhouse(lake, "sql", "--format", "json", "SELECT count(*) AS n FROM quarantine")
    assert run.returncode == 0, run.stderr
    assert quarantined.select(pl.len()).collect().item() == json.loads(run.stdout)[0]["n"] > 0


def test_polars_reads_the_lake_in_s3_as_ddl_says(s3_lake):
    import polars as pl
    report = s3_lake
    events = polars_frame(S3_LAKE)["cloudtrail"]
    assert events.select(pl.len()).collect().item() == report["records_written"] > 0


# The saved queries as `trailhouse ddl duckdb|spark --query all` writes them, run by DuckDB and
# by Spark over the table's committed files, give the rows `trailhouse run` gives, for every case
# of their fixtures.

def parse_time(text, now):
    units = {"d": 86400, "h": 3600, "m": 60}
    if text[-1:] in units and text[:-1].isdigit():
        return now - datetime.timedelta(seconds=int(text[:-1]) * units[text[-1]])
    t = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    return t if t.tzinfo else t.replace(tzinfo=datetime.timezone.utc)


def translated_queries(lake, engine):
    """{name: (sql, {param: (type, default)})} and the names refused, as `ddl ENGINE` prints them."""
    run = trailhouse(lake, "ddl", engine, "--query", "all")
    assert run.returncode == 0, run.stderr
    marker = {"duckdb": r"\$", "spark": ":"}[engine]
    queries, refused = {}, []
    for block in run.stdout.split("\n\n-- ")[1:]:
        lines = block.splitlines()
        name = lines[0].split(":")[0]
        params = {}
        for line in lines[1:]:
            m = re.match(rf"-- {marker}(\w+) (\w+) \((?:default (.*?)|required)\)", line)
            if m:
                params[m.group(1)] = (m.group(2), m.group(3))
        sql = "\n".join(l for l in lines[1:] if not l.startswith("--")).strip()
        if "does not translate to" in lines[1]:
            refused.append(name)
        else:
            assert sql.endswith(";"), block
            queries[name] = (sql[:-1], params)
    return queries, refused


def canonical(value):
    if isinstance(value, datetime.datetime):
        if value.tzinfo is None:  # Spark's instants, in its session's time zone (UTC here)
            value = value.replace(tzinfo=datetime.timezone.utc)
        return value.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    if isinstance(value, str) and re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", value):
        return value[:19]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, (list, dict)):
        return json.dumps(value, sort_keys=True, default=str)
    return value


@pytest.fixture(scope="module")
def fixture_lake(tmp_path_factory):
    """The sample trail, the corpus and every saved query's fixture events, in one lake."""
    tmp = tmp_path_factory.mktemp("saved")
    lake = tmp / "lake"
    events = []
    for spec in sorted((ROOT / "queries").glob("*/*.test.json")):
        fixture = json.loads(spec.read_text())
        events += fixture["events"] + fixture.get("lookalikes", [])
    fixtures = tmp / "fixtures.ndjson"
    fixtures.write_text("".join(json.dumps(e) + "\n" for e in events))
    run = trailhouse(lake, "ingest", str(ROOT / "sample-logs"), str(ROOT / "tests" / "corpus"), str(fixtures))
    assert run.returncode == 1, run.stderr  # the sample trail's truncated file
    return lake


def compare_with_trailhouse(lake, queries, execute):
    """Runs every translated query for every case of its fixture with `execute(sql, bound)`
    (rows as dicts) and compares with `trailhouse run`; returns (cases compared, with rows)."""
    now = datetime.datetime.now(datetime.timezone.utc)
    compared, with_rows = 0, 0
    for spec in sorted((ROOT / "queries").glob("*/*.test.json")):
        name = f"{spec.parent.name}/{spec.name.removesuffix('.test.json')}"
        if name not in queries:
            continue
        sql, declared = queries[name]
        for case in json.loads(spec.read_text())["cases"]:
            window = {"since": case.get("since", "2000-01-01"), "until": case.get("until", "2030-01-01")}
            args = ["run", name, "--format", "json", "--since", window["since"], "--until", window["until"]]
            for k, v in case["params"].items():
                args += ["--param", f"{k}={v}"]
            ours = trailhouse(lake, *args)
            assert ours.returncode == 0, (name, ours.stderr)
            ours = json.loads(ours.stdout)
            bound = {}
            for p in set(re.findall(r"[$:](\w+)", sql)) & (set(declared) | set(window)):
                if p in window:
                    bound[p] = parse_time(window[p], now)
                    continue
                kind, default = declared[p]
                text = str(case["params"].get(p, default))
                bound[p] = {"timestamp": lambda t: parse_time(t, now), "integer": int}.get(kind, str)(text)
            theirs = execute(sql, bound)
            # trailhouse's JSON leaves a row's nulls out.
            columns = set().union(*(r.keys() for r in theirs)) if theirs else set()
            assert all(set(r) <= columns for r in ours), (name, columns)
            key = lambda rows: sorted(
                json.dumps({k: canonical(v) for k, v in r.items() if v is not None}, sort_keys=True, default=str)
                for r in rows)
            assert key(theirs) == key(ours), (name, case, sql)
            compared += 1
            with_rows += bool(ours)
    return compared, with_rows


def translated_as_expected(lake, engine):
    """The queries `ddl ENGINE --query all` translates, having checked which it refuses: what
    needs `credentials`, `cidr_match` or an ordered aggregate stays in trailhouse, and the Sigma
    rules that read into JSON (Sigma's paths: keys in any case, arrays searched)."""
    queries, refused = translated_queries(lake, engine)
    assert {r for r in refused if not r.startswith("sigma/")} == {
        "investigate/access-key", "investigate/who-deleted", "investigate/session-origin",
        "investigate/ip-activity", "security/no-vpc-endpoint", "investigate/new-behaviour",
    }, refused
    assert 0 < len([r for r in refused if r.startswith("sigma/")]) <= 12, refused
    assert len([q for q in queries if q.startswith("sigma/")]) >= 45, sorted(queries)
    assert len(queries) >= 75
    return queries


def test_duckdb_runs_the_saved_queries_as_trailhouse_does(fixture_lake):
    lake = fixture_lake
    queries = translated_as_expected(lake, "duckdb")

    con = duckdb.connect()
    files = DeltaTable(str(lake / "cloudtrail")).file_uris()
    con.execute(f"CREATE VIEW cloudtrail AS SELECT * FROM read_parquet({files!r}, hive_partitioning = true)")

    def execute(sql, bound):
        cursor = con.execute(sql, bound)
        columns = [d[0] for d in cursor.description]
        return [dict(zip(columns, row)) for row in cursor.fetchall()]

    compared, with_rows = compare_with_trailhouse(lake, queries, execute)
    assert compared >= 90 and with_rows >= 90, (compared, with_rows)


def test_spark_runs_the_saved_queries_as_trailhouse_does(fixture_lake):
    """Apache Spark 4 (pyspark, on the machine's Java) over the table's committed files: the
    Delta reader is a JVM package from Maven, so the files come from the Delta log here."""
    from pyspark.sql import SparkSession

    # PySpark gives instants as naive datetimes in the process's time zone.
    os.environ["TZ"] = "UTC"
    time.tzset()
    lake = fixture_lake
    queries = translated_as_expected(lake, "spark")

    spark = (SparkSession.builder.master("local[2]").appName("trailhouse-interop")
             .config("spark.ui.enabled", "false")
             .config("spark.sql.session.timeZone", "UTC")
             .config("spark.sql.shuffle.partitions", "2")
             .config("spark.driver.extraJavaOptions", "-Duser.timezone=UTC")
             .getOrCreate())
    try:
        spark.sparkContext.setLogLevel("ERROR")
        table = lake / "cloudtrail"
        files = DeltaTable(str(table)).file_uris()
        spark.read.option("basePath", str(table)).parquet(*files).createOrReplaceTempView("cloudtrail")

        def execute(sql, bound):
            return [row.asDict(recursive=True) for row in spark.sql(sql, args=bound).collect()]

        compared, with_rows = compare_with_trailhouse(lake, queries, execute)
        assert compared >= 90 and with_rows >= 90, (compared, with_rows)
    finally:
        spark.stop()
