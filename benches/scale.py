#!/usr/bin/env python3
"""Trailhouse at trail scale, side by side with DuckDB, in one run.

Every trailhouse figure is a whole process (`trailhouse …` started, run, exited), timed by wall
clock, with its peak resident memory (ru_maxrss, as GNU time reports it). DuckDB runs in this process over its
own copy of the same rows, written once as DuckDB's Parquet partitioned by day and region
(`<lake>.duckdb-parquet/`, reused by later runs), and is timed in-process (the query alone, warm).
Beside each investigation query DuckDB runs that saved query as `trailhouse ddl duckdb`
translates it, with the same parameters (written by hand where the translation is refused and
the question needs no credentials table), and the row counts of both are printed.

    python3 benches/scale.py --bin target/release/trailhouse --lake /data/lake-2m [--trail /data/trail-2m]

With --trail the lake is first (re)built by `trailhouse ingest` (timed too). Needs the Python
packages of tests/interop/requirements.txt (duckdb, deltalake).

With --cluster, a DataFusion Ballista cluster of this machine (`trailhouse cluster scheduler`
and two executors, on free ports of 127.0.0.1) serves the lake, and each command of the
investigation pack and the report runs on it right after its run on one machine: both figures
in the same row (the client's wall time and peak RSS; the executors' peaks at the end).
"""
import argparse
import datetime
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import time

PRINCIPAL = "coalesce(useridentity.arn, useridentity.invokedby, useridentity.principalid, useridentity.type)"


def measured(cmd):
    """Runs `cmd` with its stdout and stderr in files: (seconds, its peak RSS in MiB, stdout,
    stderr, exit code). The peak is GNU time's (`%M`, the child's ru_maxrss): a child forked from
    this process would count this process's memory (DuckDB's, once it has run) in its own peak,
    as Linux keeps the high-water mark of the memory a child had before its exec."""
    if not os.path.exists(GNU_TIME):
        sys.exit(f"{GNU_TIME} is missing (Debian's package `time`): it takes each command's peak RSS")
    t = time.perf_counter()
    with open(MEASURE_OUT, "w") as out, open(MEASURE_ERR, "w") as err:
        code = subprocess.call([GNU_TIME, "-q", "-f", "%M", "-o", MEASURE_RSS, *cmd], stdout=out, stderr=err)
    secs = time.perf_counter() - t
    with open(MEASURE_OUT) as f:
        out = f.read()
    with open(MEASURE_ERR) as f:
        err = f.read()
    with open(MEASURE_RSS) as f:
        kib = int(f.read().split()[-1])
    return secs, kib / 1024.0, out, err, code


GNU_TIME = "/usr/bin/time"
MEASURE_RSS = "/tmp/trailhouse-scale.rss"
MEASURE_OUT = "/tmp/trailhouse-scale.out"
MEASURE_ERR = "/tmp/trailhouse-scale.err"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(proc, port, what):
    deadline = time.time() + 120
    while True:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        if proc.poll() is not None or time.time() > deadline:
            sys.exit(f"{what} did not start (exit {proc.poll()})")
        time.sleep(0.1)


class Cluster:
    """A scheduler and two executors serving the lake, stopped at exit."""

    def __init__(self, bin, lake, executors=2):
        self.procs = []
        work = "/tmp/trailhouse-scale-cluster"
        shutil.rmtree(work, ignore_errors=True)
        os.makedirs(work)
        port = free_port()
        self.address = f"df://127.0.0.1:{port}"
        log = open(os.path.join(work, "scheduler.log"), "w")
        sched = subprocess.Popen([bin, "--lake", lake, "cluster", "scheduler", "--bind", f"127.0.0.1:{port}"],
                                 stdout=subprocess.DEVNULL, stderr=log)
        self.procs.append(sched)
        wait_for_port(sched, port, "the scheduler")
        for i in range(executors):
            flight, grpc = free_port(), free_port()
            log = open(os.path.join(work, f"executor-{i}.log"), "w")
            p = subprocess.Popen([bin, "--lake", lake, "cluster", "executor", "--scheduler", self.address,
                                  "--bind", f"127.0.0.1:{flight}", "--grpc-port", str(grpc),
                                  "--work-dir", os.path.join(work, f"work-{i}")],
                                 stdout=subprocess.DEVNULL, stderr=log)
            self.procs.append(p)
            wait_for_port(p, flight, f"executor {i}")
        time.sleep(1)  # the executors' registration

    def peaks_mib(self):
        """Each node's peak RSS so far (VmHWM)."""
        peaks = []
        for p in self.procs:
            try:
                with open(f"/proc/{p.pid}/status") as f:
                    for line in f:
                        if line.startswith("VmHWM:"):
                            peaks.append(int(line.split()[1]) / 1024.0)
            except OSError:
                peaks.append(None)
        return peaks

    def stop(self):
        for p in self.procs:
            p.kill()
            p.wait()


class Bench:
    def __init__(self, args):
        self.a = args
        self.rows = []
        self.cluster = None

    def th(self, *args, bin=None):
        return [bin or self.a.bin, "--lake", self.a.lake, *args]

    def time_th(self, label, args, runs=None, ok=(0,), compare=True):
        """Times `trailhouse args`; with --before, the other binary's run of the same command
        goes just before each of this one's, so that both see the host as it is then."""
        before = self.a.before if compare else None
        times, peak, out, err = [], 0.0, "", ""
        before_times, before_peak = [], 0.0
        for _ in range(runs or self.a.runs):
            if before:
                secs, rss, _, berr, code = measured(self.th(*args, bin=before))
                if code not in ok:
                    sys.exit(f"{label} (--before binary): exit {code}\n{berr}")
                before_times.append(secs)
                before_peak = max(before_peak, rss)
            secs, rss, out, err, code = measured(self.th(*args))
            if code not in ok:
                sys.exit(f"{label}: exit {code}\n{err}")
            times.append(secs)
            peak = max(peak, rss)
        row = {"what": label, "seconds": statistics.median(times), "runs": times, "rss_mib": peak}
        line = f"  {label:<48} {row['seconds']:7.3f} s  {peak:7.0f} MiB"
        if self.cluster and compare:
            ctimes, cpeak = [], 0.0
            for _ in range(runs or self.a.runs):
                secs, rss, _, cerr, code = measured(self.th(*args, "--cluster", self.cluster.address))
                if code not in ok:
                    sys.exit(f"{label} (on the cluster): exit {code}\n{cerr}")
                ctimes.append(secs)
                cpeak = max(cpeak, rss)
            row.update(cluster_seconds=statistics.median(ctimes), cluster_runs=ctimes, cluster_rss_mib=cpeak)
            line += f"   (cluster: {row['cluster_seconds']:7.3f} s  {cpeak:7.0f} MiB)"
        if before_times:
            row.update(before_seconds=statistics.median(before_times), before_runs=before_times,
                       before_rss_mib=before_peak)
            line += f"   (before: {row['before_seconds']:7.3f} s  {before_peak:7.0f} MiB)"
        self.rows.append(row)
        print(line, flush=True)
        return out, err

    def sql_value(self, sql):
        secs, rss, out, err, code = measured(self.th("sql", "--format", "csv", sql))
        if code != 0:
            sys.exit(f"{sql}: {err}")
        lines = out.strip().splitlines()
        return lines[1] if len(lines) > 1 else None


def duck_layout(lake):
    """DuckDB's own Parquet of the lake's rows, partitioned by day and region (written once)."""
    import duckdb
    from deltalake import DeltaTable

    target = lake.rstrip("/") + ".duckdb-parquet"
    stamp = os.path.join(target, ".version")
    dt = DeltaTable(os.path.join(lake, "cloudtrail"))
    version = str(dt.version())
    if os.path.exists(stamp) and open(stamp).read() == version:
        return target
    shutil.rmtree(target, ignore_errors=True)
    # A day at a time: in one COPY of an organization trail (2,700 day/region partitions),
    # DuckDB's buffers for every partition at once spilled past 16 GB of free disk.
    by_day = {}
    for f in dt.file_uris():
        day = next((p for p in f.split("/") if p.startswith("day=")), "")
        by_day.setdefault(day, []).append(f)
    con = duckdb.connect()
    t = time.perf_counter()
    for files in by_day.values():
        file_list = "[" + ", ".join("'" + f.replace("'", "''") + "'" for f in files) + "]"
        con.execute(
            f"COPY (SELECT * FROM read_parquet({file_list}, hive_partitioning = true)) "
            f"TO '{target}' (FORMAT parquet, PARTITION_BY (day, region), APPEND true)"
        )
    print(f"  duckdb layout written in {time.perf_counter() - t:.1f} s: {target}", flush=True)
    with open(stamp, "w") as f:
        f.write(version)
    return target


def duckdb_translations(bench):
    """The saved queries in DuckDB's SQL, as `trailhouse ddl duckdb --query all` writes them:
    {name: (sql, {param: (type, default)})}, and {name: why} for those it refuses."""
    secs, rss, out, err, code = measured(bench.th("ddl", "duckdb", "--query", "all"))
    if code != 0:
        sys.exit(f"ddl duckdb --query all: exit {code}\n{err}")
    queries, refused = {}, {}
    for block in out.split("\n\n-- ")[1:]:
        lines = block.splitlines()
        name = lines[0].split(":")[0].split("/")[-1]
        if "does not translate to" in lines[1]:
            refused[name] = lines[1].split("does not translate to DuckDB: ", 1)[-1]
            continue
        params = {}
        for line in lines[1:]:
            m = re.match(r"-- \$(\w+) (\w+) \((?:default (.*?)|required)\)", line)
            if m:
                params[m.group(1)] = (m.group(2), m.group(3))
        sql = "\n".join(l for l in lines[1:] if not l.startswith("--")).strip()
        queries[name] = (sql.rstrip(";"), params)
    return queries, refused


# DuckDB's SQL, by hand, for saved queries `ddl duckdb` refuses that can be written without
# trailhouse's credentials table: the same rows (the row counts printed side by side check it).
BY_HAND = {
    # One address (the bench's parameter), not a block: an equality where we match the CIDR.
    "ip-activity": ("""
        SELECT eventtime, sourceipaddress, eventname, eventsource,
               coalesce(useridentity.arn, useridentity.invokedby, useridentity.principalid,
                        useridentity.type) AS principal,
               useridentity.accesskeyid AS accesskeyid, useragent, awsregion AS region,
               recipientaccountid AS account, errorcode, eventid
        FROM cloudtrail
        WHERE eventtime >= $since AND eventtime < $until AND sourceipaddress = $ip
        ORDER BY eventtime DESC, eventid""",
        {"ip": ("string", None), "since": ("timestamp", None), "until": ("timestamp", None)}),
    "new-behaviour": ("""
        WITH calls AS (
            SELECT coalesce(useridentity.arn, useridentity.invokedby, useridentity.principalid,
                            useridentity.type) AS principal,
                   eventsource, eventname, eventtime, sourceipaddress, eventid
            FROM cloudtrail WHERE eventtime >= $baseline AND eventtime < $until),
        new AS (
            SELECT principal, eventsource, eventname FROM calls
            GROUP BY ALL HAVING min(eventtime) >= $since)
        SELECT c.principal, c.eventsource, c.eventname, count(*) AS calls,
               min(c.eventtime) AS first_seen, max(c.eventtime) AS last_seen,
               array_to_string(list_sort(list(DISTINCT c.sourceipaddress)), ', ') AS source_ips,
               arg_min(c.eventid, (c.eventtime, c.eventid)) AS eventid
        FROM new n JOIN calls c
          ON n.principal IS NOT DISTINCT FROM c.principal
         AND n.eventsource IS NOT DISTINCT FROM c.eventsource
         AND n.eventname IS NOT DISTINCT FROM c.eventname
        WHERE c.eventtime >= $since
        GROUP BY ALL ORDER BY first_seen DESC, principal, eventname""",
        {"baseline": ("timestamp", None), "since": ("timestamp", None), "until": ("timestamp", None)}),
}


def duckdb_value(kind, text):
    """A `--param`/`--since` value as DuckDB binds it for a parameter of `kind`."""
    if kind == "timestamp":
        when = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
        return when if when.tzinfo else when.replace(tzinfo=datetime.timezone.utc)
    if kind == "integer":
        return int(text)
    return text


def integrity(a):
    """verify over a signed trail, and ingest with and without --verify into new lakes (runs
    alternated, the page cache warm), whole processes."""
    trail, keys = a.signed_trail, a.public_keys
    if not (trail and keys):
        sys.exit("the integrity section needs --signed-trail and --public-keys")
    subprocess.run(f"find '{trail}' -type f -print0 | xargs -0 -P 16 -n 256 cat > /dev/null",
                   shell=True, check=True)
    print("integrity (whole process):", flush=True)
    times = []
    for _ in range(a.runs):
        secs, rss, out, err, code = measured([a.bin, "verify", trail, "--public-keys", keys, "--json"])
        if code not in (0, 1):
            sys.exit(f"verify: exit {code}\n{err}")
        times.append((secs, rss))
    r = json.loads(out.strip().splitlines()[-1])
    logs = sum(r["summary"]["log_files"].values())
    secs = statistics.median(t for t, _ in times)
    print(f"  verify: {secs:.2f} s, {max(m for _, m in times):.0f} MiB, {len(r['digests'])} digests, "
          f"{logs} log files ({logs / secs:.0f} files/s); verdicts {r['summary']}", flush=True)
    plain, checked = [], []
    for run in range(a.runs):
        for verify, into in ((False, plain), (True, checked)):
            lake = f"{a.lake}-integrity-{'verify' if verify else 'plain'}"
            shutil.rmtree(lake, ignore_errors=True)
            cmd = [a.bin, "--lake", lake, "ingest", "--json", trail]
            if verify:
                cmd += ["--verify", "--public-keys", keys]
            secs, rss, out, err, code = measured(cmd)
            if code not in (0, 1):
                sys.exit(f"{' '.join(cmd)}: exit {code}\n{err}")
            into.append((secs, rss))
            shutil.rmtree(lake, ignore_errors=True)
    p = statistics.median(t for t, _ in plain)
    c = statistics.median(t for t, _ in checked)
    print(f"  ingest: {p:.2f} s ({max(m for _, m in plain):.0f} MiB); ingest --verify: {c:.2f} s "
          f"({max(m for _, m in checked):.0f} MiB): {100 * (c - p) / p:+.1f} %; runs {plain} {checked}",
          flush=True)


def duck_beside(b, duck, sql, params, ours_rows=None, label="  duckdb"):
    """Times `sql` in DuckDB (warm, the median of --runs), beside the row just timed."""
    times, rows = [], None
    duck.execute(sql, params).fetchall()  # warm
    for _ in range(b.a.runs):
        t = time.perf_counter()
        rows = duck.execute(sql, params).fetchall()
        times.append(time.perf_counter() - t)
    d = statistics.median(times)
    b.rows[-1]["duckdb_seconds"] = d
    b.rows[-1]["duckdb_rows"] = len(rows)
    counted = f"rows {ours_rows} vs {len(rows)}" if ours_rows is not None else f"{len(rows)} rows"
    print(f"  {label:<48} {d:7.3f} s  ratio {b.rows[-1]['seconds'] / d:5.2f}x  ({counted})", flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default="target/release/trailhouse")
    ap.add_argument("--lake", required=True)
    ap.add_argument("--trail", help="ingest this trail into a new lake first")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--before", help="another trailhouse binary (say, the previous commit's) timed "
                                     "on the same commands, each of its runs just before this one's")
    ap.add_argument("--json", help="write the figures here")
    ap.add_argument("--no-duckdb", action="store_true")
    ap.add_argument("--cluster", action="store_true",
                    help="also run the investigation pack and the report on a local Ballista cluster")
    ap.add_argument("--sections", default="investigation,whole,plain",
                    help="which groups of figures to take (comma-separated; ingest runs with --trail; "
                         "`integrity` needs --signed-trail and --public-keys)")
    ap.add_argument("--signed-trail", help="a trail with digests (benches' sign-trail) for `integrity`")
    ap.add_argument("--public-keys", help="its public keys (sign-trail --keys)")
    a = ap.parse_args()
    a.bin = os.path.abspath(a.bin)
    if a.before:
        a.before = os.path.abspath(a.before)
    sections = set(a.sections.split(","))
    b = Bench(a)

    if "integrity" in sections:
        integrity(a)
        if sections == {"integrity"}:
            return

    if a.trail:
        shutil.rmtree(a.lake, ignore_errors=True)
        # Warm the page cache: the figure is trailhouse's, not the disk's.
        subprocess.run(f"find '{a.trail}' -type f -print0 | xargs -0 -P 16 -n 256 cat > /dev/null",
                       shell=True, check=True)
        out, _ = b.time_th("ingest (as the CLI runs it)", ["ingest", "--json", a.trail], runs=1, ok=(0, 1),
                           compare=False)
        report = json.loads(out.strip().splitlines()[-1])
        b.rows[-1]["events"] = report["records_read"]
        b.rows[-1]["events_per_second"] = report["records_read"] / b.rows[-1]["seconds"]
        print(f"    {report['records_read']} events read, {report['records_written']} written, "
              f"{report['partitions']} partitions, {report['records_read'] / b.rows[-1]['seconds']:.0f} events/s "
              f"(whole process)", flush=True)

    print("parameters from the lake:", flush=True)
    lo = b.sql_value("SELECT min(eventtime) FROM cloudtrail")
    hi = b.sql_value("SELECT max(eventtime) FROM cloudtrail")
    bucket = b.sql_value("SELECT json_get_str(requestparameters, 'bucketName') FROM cloudtrail "
                         "WHERE eventname = 'DeleteBucket' AND useridentity.type = 'AssumedRole' LIMIT 1") \
        or b.sql_value("SELECT json_get_str(requestparameters, 'bucketName') FROM cloudtrail WHERE eventname = 'DeleteBucket' LIMIT 1")
    key = b.sql_value("SELECT useridentity.accesskeyid FROM cloudtrail WHERE useridentity.type = 'AssumedRole' "
                      "AND useridentity.arn LIKE '%assumed-role/lambda%' LIMIT 1")
    chained = b.sql_value("SELECT useridentity.accesskeyid FROM cloudtrail WHERE eventname = 'DeleteBucket' "
                          "AND useridentity.type = 'AssumedRole' LIMIT 1") or key
    principal = b.sql_value(f"SELECT {PRINCIPAL} FROM cloudtrail WHERE useridentity.type = 'IAMUser' LIMIT 1")
    ip = b.sql_value("SELECT sourceipaddress FROM cloudtrail WHERE errorcode IS NOT NULL AND sourceipaddress LIKE '203.%' LIMIT 1")
    day_region = b.sql_value("SELECT CAST(day AS VARCHAR) || '|' || region FROM cloudtrail WHERE region = 'us-east-1' "
                             "AND useridentity.arn IS NOT NULL LIMIT 1")
    day, region = day_region.split("|")
    day_principal = b.sql_value(f"SELECT useridentity.arn FROM cloudtrail WHERE day = DATE '{day}' AND region = '{region}' "
                                "AND useridentity.type = 'IAMUser' LIMIT 1")
    last = datetime.datetime.fromisoformat(hi.replace("Z", "+00:00"))
    window = ["--since", lo[:10], "--until", (last + datetime.timedelta(days=1)).strftime("%Y-%m-%d")]
    recent = (last - datetime.timedelta(days=7)).strftime("%Y-%m-%dT%H:%M:%SZ")
    baseline = (last - datetime.timedelta(days=97)).strftime("%Y-%m-%dT%H:%M:%SZ")
    print(f"  bucket={bucket} key={key} chained={chained} principal={principal} ip={ip} day={day} region={region}",
          flush=True)

    cases = [
        ("who-deleted", ["-p", f"resource={bucket}"]),
        ("resource-history", ["-p", f"resource={bucket}"]),
        ("session-origin", ["-p", f"key={chained}"]),
        ("access-key", ["-p", f"key={key}"]),
        ("principal-activity", ["-p", f"principal={principal}"]),
        ("principal-summary", ["-p", f"principal={principal}"]),
        ("ip-activity", ["-p", f"ip={ip}"]),
        ("errors", []),
        ("console-logins", []),
    ]
    cases.append(("new-behaviour", ["-p", f"baseline={baseline}"]))
    windows = {"new-behaviour": ["--since", recent, "--until", window[3]]}
    duck = None
    if ("plain" in sections or "investigation" in sections) and not a.no_duckdb:
        import duckdb
        target = duck_layout(a.lake)
        duck = duckdb.connect()
        for view in ("t", "cloudtrail"):
            duck.execute(f"CREATE VIEW {view} AS SELECT * FROM "
                         f"read_parquet('{target}/**/*.parquet', hive_partitioning = true)")
    if a.cluster:
        b.cluster = Cluster(a.bin, a.lake)
        print(f"cluster: {b.cluster.address}, a scheduler and 2 executors", flush=True)
    if "investigation" in sections:
        print("investigation queries (trailhouse run, whole process | DuckDB in-process, the query as "
              "`ddl duckdb` translates it, on its own Parquet):", flush=True)
        translated, refused = duckdb_translations(b) if duck is not None else ({}, {})
        for name, params in cases:
            args = params + windows.get(name, window)
            _, err = b.time_th(f"run {name}", ["run", name, *args, "--format", "csv", "-o", "/dev/null"])
            if duck is None:
                continue
            label = "  duckdb"
            if name in translated:
                sql, kinds = translated[name]
            elif name in BY_HAND:
                label = "  duckdb (by hand: `ddl duckdb` refuses it)"
                sql, kinds = BY_HAND[name]
            else:
                print(f"  {'  duckdb':<48} not in DuckDB's SQL: {refused.get(name, '?')}", flush=True)
                continue
            given = {}
            for flag, value in zip(args[0::2], args[1::2]):
                key, value = value.split("=", 1) if flag == "-p" else (flag.removeprefix("--"), value)
                given[key] = value
            bound = {k: duckdb_value(kind, given.get(k, default)) for k, (kind, default) in kinds.items()}
            counted = re.search(r"^(\d+) rows? from ", err, re.M)
            duck_beside(b, duck, sql, bound, ours_rows=int(counted.group(1)) if counted else None, label=label)

    if "whole" in sections:
        print("whole-table commands:", flush=True)
        b.time_th("report (cis-v6.0 + security, whole window)",
                  ["report", *window, "--format", "json", "-o", "/dev/null"], runs=1)
        b.time_th("detect (57 Sigma rules, whole window)",
                  ["detect", *window, "--format", "json", "-o", "/dev/null"], runs=1)
        if b.cluster:
            print(f"  cluster nodes' peak RSS (scheduler, executors): "
                  f"{', '.join(f'{p:.0f} MiB' for p in b.cluster.peaks_mib() if p)}", flush=True)
            b.cluster.stop()
            b.cluster = None
        b.time_th("credentials: SELECT count(*) FROM credentials",
                  ["sql", "--format", "csv", "SELECT count(*) FROM credentials"], runs=1)
        b.time_th("export (ndjson)", ["export", "-o", "/dev/null"], runs=1)

    plain = {
        "top event names": (
            "SELECT eventname, count(*) AS n FROM cloudtrail GROUP BY eventname ORDER BY n DESC, eventname LIMIT 10",
            "SELECT eventname, count(*) AS n FROM t GROUP BY eventname ORDER BY n DESC, eventname LIMIT 10"),
        "who deleted bucket X": (
            f"SELECT eventtime, useridentity.arn, sourceipaddress FROM cloudtrail WHERE eventname = 'DeleteBucket' "
            f"AND json_get_str(requestparameters, 'bucketName') = '{bucket}'",
            f"SELECT eventtime, useridentity.arn, sourceipaddress FROM t WHERE eventname = 'DeleteBucket' "
            f"AND json_extract_string(requestparameters, '$.bucketName') = '{bucket}'"),
        "one principal, one day and region": (
            f"SELECT count(*) FROM cloudtrail WHERE day = DATE '{day}' AND region = '{region}' "
            f"AND useridentity.arn = '{day_principal}'",
            f"SELECT count(*) FROM t WHERE day = DATE '{day}' AND region = '{region}' "
            f"AND useridentity.arn = '{day_principal}'"),
        "console logins without MFA": (
            "SELECT eventtime, useridentity.arn, sourceipaddress FROM cloudtrail WHERE eventname = 'ConsoleLogin' "
            "AND json_get_str(additionaleventdata, 'MFAUsed') <> 'Yes'",
            "SELECT eventtime, useridentity.arn, sourceipaddress FROM t WHERE eventname = 'ConsoleLogin' "
            "AND json_extract_string(additionaleventdata, '$.MFAUsed') <> 'Yes'"),
        "access denied by principal and day": (
            f"SELECT day, {PRINCIPAL} AS principal, count(*) AS n FROM cloudtrail "
            "WHERE errorcode IN ('AccessDenied', 'Client.UnauthorizedOperation') GROUP BY 1, 2 ORDER BY n DESC, 1, 2 LIMIT 20",
            f"SELECT day, {PRINCIPAL} AS principal, count(*) AS n FROM t "
            "WHERE errorcode IN ('AccessDenied', 'Client.UnauthorizedOperation') GROUP BY 1, 2 ORDER BY n DESC, 1, 2 LIMIT 20"),
        "distinct eventIDs vs total": (
            "SELECT count(DISTINCT eventid) AS ids, count(*) AS events FROM cloudtrail",
            "SELECT count(DISTINCT eventid) AS ids, count(*) AS events FROM t"),
    }
    if "plain" not in sections:
        plain = {}
    if plain:
        print("plain questions (trailhouse sql as a whole process | DuckDB in-process on its own Parquet):",
              flush=True)
    for label, (ours, theirs) in plain.items():
        out, _ = b.time_th(f"sql: {label}", ["sql", "--format", "csv", ours])
        if duck is not None:
            duck_beside(b, duck, theirs, {}, ours_rows=max(len(out.strip().splitlines()) - 1, 0))

    if b.cluster:
        print(f"  cluster nodes' peak RSS (scheduler, executors): "
              f"{', '.join(f'{p:.0f} MiB' for p in b.cluster.peaks_mib() if p)}", flush=True)
        b.cluster.stop()
    if a.json:
        with open(a.json, "w") as f:
            json.dump(b.rows, f, indent=1)


if __name__ == "__main__":
    main()
