#!/usr/bin/env python3
"""Trailhouse at trail scale, side by side with DuckDB, in one run.

Every trailhouse figure is a whole process (`trailhouse …` started, run, exited), timed by wall
clock, with its peak resident memory (the child's ru_maxrss). DuckDB runs in this process over its
own copy of the same rows, written once as DuckDB's Parquet partitioned by day and region
(`<lake>.duckdb-parquet/`, reused by later runs), and is timed in-process (the query alone, warm).

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
import shutil
import socket
import statistics
import subprocess
import sys
import time

PRINCIPAL = "coalesce(useridentity.arn, useridentity.invokedby, useridentity.principalid, useridentity.type)"


def measured(cmd):
    """Runs `cmd` with its stdout and stderr in files: (seconds, its peak RSS in MiB, stdout,
    stderr, exit code). The peak comes from wait4, i.e. this child's own ru_maxrss."""
    t = time.perf_counter()
    pid = os.fork()
    if pid == 0:
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            out = os.open(MEASURE_OUT, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            err = os.open(MEASURE_ERR, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            os.dup2(out, 1)
            os.dup2(err, 2)
            os.close(devnull)
            os.execv(cmd[0], cmd)
        finally:
            os._exit(127)
    _, status, usage = os.wait4(pid, 0)
    secs = time.perf_counter() - t
    with open(MEASURE_OUT) as f:
        out = f.read()
    with open(MEASURE_ERR) as f:
        err = f.read()
    code = os.waitstatus_to_exitcode(status)
    return secs, usage.ru_maxrss / 1024.0, out, err, code


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
    files = dt.file_uris()
    con = duckdb.connect()
    file_list = "[" + ", ".join("'" + f.replace("'", "''") + "'" for f in files) + "]"
    t = time.perf_counter()
    con.execute(
        f"COPY (SELECT * FROM read_parquet({file_list}, hive_partitioning = true)) "
        f"TO '{target}' (FORMAT parquet, PARTITION_BY (day, region))"
    )
    print(f"  duckdb layout written in {time.perf_counter() - t:.1f} s: {target}", flush=True)
    with open(stamp, "w") as f:
        f.write(version)
    return target


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
    if a.cluster:
        b.cluster = Cluster(a.bin, a.lake)
        print(f"cluster: {b.cluster.address}, a scheduler and 2 executors", flush=True)
    if "investigation" in sections:
        print("investigation queries (trailhouse run, whole process):", flush=True)
        for name, params in cases:
            b.time_th(f"run {name}", ["run", name, *params, *window, "--format", "csv", "-o", "/dev/null"])
        b.time_th("run new-behaviour", ["run", "new-behaviour", "-p", f"baseline={baseline}", "--since", recent,
                                        "--format", "csv", "-o", "/dev/null"])

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
    duck = None
    if plain and not a.no_duckdb:
        import duckdb
        target = duck_layout(a.lake)
        duck = duckdb.connect()
        duck.execute(f"CREATE VIEW t AS SELECT * FROM read_parquet('{target}/**/*.parquet', hive_partitioning = true)")
    print("plain questions (trailhouse sql as a whole process | DuckDB in-process on its own Parquet):", flush=True)
    for label, (ours, theirs) in plain.items():
        out, _ = b.time_th(f"sql: {label}", ["sql", "--format", "csv", ours])
        if duck is not None:
            times, rows = [], None
            duck.execute(theirs).fetchall()  # warm
            for _ in range(a.runs):
                t = time.perf_counter()
                rows = duck.execute(theirs).fetchall()
                times.append(time.perf_counter() - t)
            d = statistics.median(times)
            b.rows[-1]["duckdb_seconds"] = d
            ours_rows = max(len(out.strip().splitlines()) - 1, 0)
            print(f"  {'  duckdb':<48} {d:7.3f} s  ratio {b.rows[-1]['seconds'] / d:5.2f}x  "
                  f"(rows {ours_rows} vs {len(rows)})", flush=True)

    if b.cluster:
        print(f"  cluster nodes' peak RSS (scheduler, executors): "
              f"{', '.join(f'{p:.0f} MiB' for p in b.cluster.peaks_mib() if p)}", flush=True)
        b.cluster.stop()
    if a.json:
        with open(a.json, "w") as f:
            json.dump(b.rows, f, indent=1)


if __name__ == "__main__":
    main()
