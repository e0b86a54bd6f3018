#!/usr/bin/env python3
"""DuckDB on the same Parquet files, for comparison with bench-queries.

Reads the committed files of the lake's Delta table (deltalake's file list, never a glob: a
glob would also read uncommitted or compacted-away files) and times DuckDB versions of the
investigation pack's main queries, with the same parameters bench-queries picked.

    .venv/bin/python benches/duckdb_queries.py --lake /tmp/lake --bucket bucket-17 --key ASIA... --ip 198.51.7.9
"""
import argparse
import statistics
import time

import duckdb
from deltalake import DeltaTable

STS = "('AssumeRole','AssumeRoleWithSAML','AssumeRoleWithWebIdentity','GetSessionToken','GetFederationToken')"
PRINCIPAL = "coalesce(useridentity.arn, useridentity.invokedby, useridentity.principalid, useridentity.type)"

QUERIES = {
    "who-deleted": f"""
        WITH minted AS (
            SELECT json_extract_string(responseelements, '$.credentials.accessKeyId') AS accesskeyid,
                   min(coalesce(useridentity.arn, useridentity.principalid, useridentity.type) || ' via ' || eventname) AS origin
            FROM t WHERE eventsource = 'sts.amazonaws.com' AND eventname IN {STS} AND errorcode IS NULL GROUP BY 1),
        deletions AS (
            SELECT * FROM t WHERE eventname LIKE 'Delete%' OR eventname LIKE 'Terminate%' OR eventname LIKE 'Remove%'
                               OR (eventname LIKE 'Schedule%' AND eventname LIKE '%Deletion')),
        named AS (
            SELECT eventid, recordhash FROM deletions WHERE strpos(coalesce(requestparameters, ''), $resource) > 0
            UNION
            SELECT eventid, recordhash FROM (SELECT eventid, recordhash, unnest(resources) AS r FROM deletions)
            WHERE strpos(coalesce(r.arn, ''), $resource) > 0)
        SELECT d.eventtime, d.eventname, {PRINCIPAL.replace('useridentity', 'd.useridentity')} AS principal, m.origin, d.eventid
        FROM deletions d JOIN named n ON n.recordhash = d.recordhash AND n.eventid IS NOT DISTINCT FROM d.eventid
        LEFT JOIN minted m ON m.accesskeyid = d.useridentity.accesskeyid
        ORDER BY d.eventtime DESC""",
    "session-origin": f"""
        WITH RECURSIVE calls AS (
            SELECT json_extract_string(responseelements, '$.credentials.accessKeyId') AS minted_key,
                   min(useridentity.accesskeyid) AS caller_key, min({PRINCIPAL}) AS caller, min(eventtime) AS eventtime
            FROM t WHERE eventsource = 'sts.amazonaws.com' AND eventname IN {STS} AND errorcode IS NULL
              AND json_extract_string(responseelements, '$.credentials.accessKeyId') IS NOT NULL
            GROUP BY 1),
        chain AS (
            SELECT 1 AS depth, c.* FROM calls c WHERE c.minted_key = $key
            UNION ALL
            SELECT chain.depth + 1, c.* FROM chain JOIN calls c ON c.minted_key = chain.caller_key
            WHERE chain.depth < 10 AND c.minted_key <> $key)
        SELECT * FROM chain ORDER BY depth""",
    "principal-activity": f"""
        SELECT eventtime, eventname, {PRINCIPAL} AS principal, sourceipaddress, eventid FROM t
        WHERE useridentity.arn = $principal OR useridentity.username = $principal OR useridentity.principalid = $principal
           OR useridentity.accesskeyid = $principal OR useridentity.sessioncontext.sessionissuer.arn = $principal
           OR useridentity.sessioncontext.sessionissuer.username = $principal
           OR (useridentity.type = 'AssumedRole' AND split_part(useridentity.arn, '/', 3) = $principal)
        ORDER BY eventtime DESC""",
    "errors": f"""
        SELECT {PRINCIPAL} AS principal, eventsource, eventname, errorcode, count(*) AS calls
        FROM t WHERE errorcode IN ('AccessDenied','AccessDeniedException','UnauthorizedOperation','Client.UnauthorizedOperation')
                  OR errorcode LIKE '%AccessDenied%' OR errorcode LIKE '%Unauthorized%'
        GROUP BY ALL ORDER BY calls DESC""",
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lake", required=True)
    ap.add_argument("--bucket", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--principal", default="alice")
    ap.add_argument("--runs", type=int, default=3)
    a = ap.parse_args()
    files = DeltaTable(f"{a.lake}/cloudtrail").file_uris()
    con = duckdb.connect()
    # A view cannot take a prepared parameter: materialise the file list as a table function call.
    file_list = "[" + ", ".join("'" + f.replace("'", "''") + "'" for f in files) + "]"
    con.execute(f"CREATE VIEW t AS SELECT * FROM read_parquet({file_list}, hive_partitioning = true)")
    params = {"who-deleted": {"resource": a.bucket}, "session-origin": {"key": a.key},
              "principal-activity": {"principal": a.principal}, "errors": {}}
    for name, sql in QUERIES.items():
        times, rows = [], 0
        for _ in range(a.runs):
            t = time.perf_counter()
            rows = len(con.execute(sql, params[name]).fetchall())
            times.append(time.perf_counter() - t)
        print(f"duckdb {name:<20} {statistics.median(times):8.3f} s  {rows:7d} rows")


if __name__ == "__main__":
    main()
