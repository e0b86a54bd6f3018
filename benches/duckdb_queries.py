#!/usr/bin/env python3
"""DuckDB on the same Parquet files, for comparison with bench-queries.

Reads the committed files of the lake's Delta table (deltalake's file list, never a glob: a
glob would also read uncommitted or compacted-away files) and times DuckDB versions of the
investigation pack's main queries, with the same parameters bench-queries picked.

    .venv/bin/python benches/duckdb_queries.py --lake /tmp/lake --bucket bucket-17 --key ASIA... --ip 198.51.7.9

The time window of the trailhouse runs is the whole table; so it is here (new-behaviour aside).
"""
import argparse
import datetime
import statistics
import time

import duckdb
from deltalake import DeltaTable

STS = "('AssumeRole','AssumeRoleWithSAML','AssumeRoleWithWebIdentity','GetSessionToken','GetFederationToken')"
PRINCIPAL = "coalesce(useridentity.arn, useridentity.invokedby, useridentity.principalid, useridentity.type)"

PRINCIPAL_MATCH = """(useridentity.arn = $principal OR useridentity.username = $principal
       OR useridentity.principalid = $principal OR useridentity.accesskeyid = $principal
       OR useridentity.sessioncontext.sessionissuer.arn = $principal
       OR useridentity.sessioncontext.sessionissuer.username = $principal
       OR (useridentity.type = 'AssumedRole' AND split_part(useridentity.arn, '/', 3) = $principal))"""
COLUMNS = f"""eventtime, eventname, eventsource, {PRINCIPAL} AS principal, useridentity.accesskeyid AS accesskeyid,
       sourceipaddress, useragent, awsregion AS region, recipientaccountid AS account, errorcode, eventid"""
ARNS = "array_to_string(list_transform(coalesce(resources, []), lambda r: r.arn), chr(10))"
# The STS calls and the chain of each key, as DuckDB computes them on every query (trailhouse
# looks up the keys a query's rows hold in its `credentials` view).
CALLS = f"""calls AS (
            SELECT json_extract_string(responseelements, '$.credentials.accessKeyId') AS minted_key,
                   arg_min(useridentity.accesskeyid, eventid) AS caller_key, arg_min({PRINCIPAL}, eventid) AS caller,
                   arg_min(eventname, eventid) AS eventname, min(eventtime) AS eventtime,
                   max(json_extract_string(responseelements, '$.assumedRoleUser.arn')) AS minted_session
            FROM t WHERE eventsource = 'sts.amazonaws.com' AND eventname IN {STS} AND errorcode IS NULL
              AND json_extract_string(responseelements, '$.credentials.accessKeyId') IS NOT NULL
            GROUP BY 1)"""

QUERIES = {
    "who-deleted": f"""
        WITH RECURSIVE {CALLS},
        hits AS (
            SELECT * FROM t
            WHERE (eventname LIKE 'Delete%' OR eventname LIKE 'Terminate%' OR eventname LIKE 'Remove%'
                   OR (eventname LIKE 'Schedule%' AND eventname LIKE '%Deletion'))
              AND (strpos(coalesce(requestparameters, ''), $resource) > 0 OR strpos({ARNS}, $resource) > 0)),
        chain AS (
            SELECT c.minted_key AS start_key, 1 AS depth, c.caller_key, c.caller, c.eventname FROM calls c
            WHERE c.minted_key IN (SELECT useridentity.accesskeyid FROM hits)
            UNION ALL
            SELECT chain.start_key, chain.depth + 1, c.caller_key, c.caller, c.eventname
            FROM chain JOIN calls c ON c.minted_key = chain.caller_key WHERE chain.depth < 10),
        origins AS (SELECT start_key, arg_max(caller || ' via ' || eventname, depth) AS origin, max(depth) AS hops
                    FROM chain GROUP BY start_key)
        SELECT {COLUMNS.replace('useridentity', 'h.useridentity').replace('eventtime,', 'h.eventtime,', 1)}, o.origin, o.hops
        FROM hits h LEFT JOIN origins o ON o.start_key = h.useridentity.accesskeyid
        ORDER BY h.eventtime DESC, h.eventid""",
    "resource-history": f"""
        SELECT {COLUMNS}, readonly FROM t
        WHERE strpos(coalesce(requestparameters, ''), $resource) > 0
           OR strpos(coalesce(responseelements, ''), $resource) > 0
           OR strpos({ARNS}, $resource) > 0
        ORDER BY eventtime DESC, eventid""",
    "session-origin": f"""
        WITH RECURSIVE {CALLS},
        chain AS (
            SELECT 1 AS depth, c.* FROM calls c WHERE c.minted_key = $key
            UNION ALL
            SELECT chain.depth + 1, c.* FROM chain JOIN calls c ON c.minted_key = chain.caller_key
            WHERE chain.depth < 10 AND c.minted_key <> chain.minted_key)
        SELECT * FROM chain ORDER BY depth""",
    "access-key": f"""
        WITH used AS (
            SELECT min(useridentity.accesskeyid) AS accesskeyid,
                   array_to_string(list_sort(list(DISTINCT {PRINCIPAL})), ', ') AS owner,
                   min(eventtime) AS first_seen, max(eventtime) AS last_seen, count(*) AS events,
                   count(errorcode) AS errors,
                   array_to_string(list_sort(list(DISTINCT sourceipaddress)), ', ') AS source_ips,
                   array_to_string(list_sort(list(DISTINCT awsregion)), ', ') AS regions,
                   array_to_string(list_sort(list(DISTINCT eventname)), ', ') AS apis
            FROM t WHERE useridentity.accesskeyid = $key),
        minted AS (
            SELECT min(json_extract_string(responseelements, '$.credentials.accessKeyId')) AS accesskeyid,
                   arg_min({PRINCIPAL}, eventtime) AS minted_by, arg_min(eventname, eventtime) AS minted_with,
                   min(eventtime) AS minted_at
            FROM t WHERE eventsource = 'sts.amazonaws.com' AND errorcode IS NULL
              AND json_extract_string(responseelements, '$.credentials.accessKeyId') = $key)
        SELECT * FROM used CROSS JOIN minted""",
    "principal-activity": f"""
        SELECT DISTINCT {COLUMNS} FROM t WHERE {PRINCIPAL_MATCH}
        ORDER BY eventtime DESC, eventid""",
    "principal-summary": f"""
        SELECT day, eventsource, eventname, count(*) AS calls, count(errorcode) AS errors,
               min(eventtime) AS first_seen, max(eventtime) AS last_seen
        FROM t WHERE {PRINCIPAL_MATCH}
        GROUP BY day, eventsource, eventname ORDER BY day DESC, calls DESC, eventname""",
    # DuckDB's inet extension is not bundled: the benchmark's address is a single IP, so equality.
    "ip-activity": f"""
        SELECT {COLUMNS} FROM t WHERE sourceipaddress = $ip ORDER BY eventtime DESC, eventid""",
    "errors": f"""
        SELECT {PRINCIPAL} AS principal, eventsource, eventname, errorcode, count(*) AS calls,
               min(eventtime) AS first_seen, max(eventtime) AS last_seen,
               array_to_string(list_sort(list(DISTINCT sourceipaddress)), ', ') AS source_ips
        FROM t WHERE errorcode IN ('AccessDenied', 'AccessDeniedException', 'UnauthorizedOperation',
                                   'Client.UnauthorizedOperation', 'UnauthorizedAccess', 'Forbidden',
                                   'AuthorizationError', 'NotAuthorized')
                  OR errorcode LIKE '%AccessDenied%' OR errorcode LIKE '%Unauthorized%'
        GROUP BY ALL ORDER BY calls DESC, principal, eventname""",
    "console-logins": f"""
        SELECT eventtime, coalesce(useridentity.username, useridentity.arn, useridentity.principalid, useridentity.type) AS principal,
               json_extract_string(responseelements, '$.ConsoleLogin') AS result,
               json_extract_string(additionaleventdata, '$.MFAUsed') AS mfa_used,
               errormessage, sourceipaddress, useragent, awsregion, recipientaccountid, eventid
        FROM t WHERE eventname = 'ConsoleLogin' ORDER BY eventtime DESC, eventid""",
    "new-behaviour": f"""
        WITH calls AS (
            SELECT {PRINCIPAL} AS principal, eventsource, eventname, eventtime, sourceipaddress, eventid FROM t
            WHERE eventtime >= $baseline),
        known AS (SELECT DISTINCT principal, eventsource, eventname FROM calls WHERE eventtime < $since)
        SELECT c.principal, c.eventsource, c.eventname, count(*) AS calls, min(c.eventtime) AS first_seen,
               max(c.eventtime) AS last_seen,
               array_to_string(list_sort(list(DISTINCT c.sourceipaddress)), ', ') AS source_ips,
               arg_min(c.eventid, c.eventtime) AS eventid
        FROM calls c ANTI JOIN known k
          ON k.principal IS NOT DISTINCT FROM c.principal AND k.eventsource = c.eventsource AND k.eventname = c.eventname
        WHERE c.eventtime >= $since
        GROUP BY 1, 2, 3 ORDER BY first_seen DESC, principal, eventname""",
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lake", required=True)
    ap.add_argument("--bucket", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--principal", default="alice")
    ap.add_argument("--ip", required=True)
    ap.add_argument("--runs", type=int, default=3)
    a = ap.parse_args()
    files = DeltaTable(f"{a.lake}/cloudtrail").file_uris()
    con = duckdb.connect()
    # A view cannot take a prepared parameter: materialise the file list as a table function call.
    file_list = "[" + ", ".join("'" + f.replace("'", "''") + "'" for f in files) + "]"
    con.execute(f"CREATE VIEW t AS SELECT * FROM read_parquet({file_list}, hive_partitioning = true)")
    # new-behaviour's defaults: the window is the last 7 days of the data, the baseline the 90 before.
    last = con.execute("SELECT max(eventtime) FROM t").fetchone()[0]
    since, baseline = last - datetime.timedelta(days=7), last - datetime.timedelta(days=97)
    params = {"who-deleted": {"resource": a.bucket}, "resource-history": {"resource": a.bucket},
              "session-origin": {"key": a.key}, "access-key": {"key": a.key},
              "principal-activity": {"principal": a.principal}, "principal-summary": {"principal": a.principal},
              "ip-activity": {"ip": a.ip}, "errors": {}, "console-logins": {},
              "new-behaviour": {"since": since, "baseline": baseline}}
    for name, sql in QUERIES.items():
        times, rows = [], 0
        for _ in range(a.runs):
            t = time.perf_counter()
            rows = len(con.execute(sql, params[name]).fetchall())
            times.append(time.perf_counter() - t)
        print(f"duckdb {name:<20} {statistics.median(times):8.3f} s  {rows:7d} rows")


if __name__ == "__main__":
    main()
