-- summary: API calls a principal made in the window (use --since, e.g. 7d) that it never made in the baseline before the window
-- param: principal string default * -- only this principal (user, role or session name, ARN, principal id or access key id); * for all
-- param: baseline timestamp default 90d -- start of the baseline; it ends where the window starts
WITH calls AS (
    SELECT actor(useridentity) AS principal,
           eventsource,
           eventname,
           eventtime,
           sourceipaddress,
           eventid
    FROM cloudtrail
    WHERE eventtime >= $since AND eventtime >= $baseline AND eventtime < $until
      AND ($principal = '*' OR is_principal(useridentity, $principal))
),
-- The (principal, service, call) made in the baseline. With no principal named, from the
-- summary of each data file's calls: one was made in the baseline when a file's first call of
-- it lies there, which a file of the baseline's first day cannot tell for calls before the
-- baseline's start followed by calls after it, so that day's calls are read themselves. A
-- named principal is matched by any of its names and keys, which the summary does not keep:
-- its calls in the baseline are read.
seen AS (
    SELECT principal, eventsource, eventname
    FROM call_summary
    WHERE $principal = '*' AND first_seen >= $baseline AND first_seen < $since
    UNION ALL
    SELECT actor(useridentity), eventsource, eventname
    FROM cloudtrail
    WHERE eventtime >= $baseline AND eventtime < $since
      AND ($principal <> '*' OR eventtime < date_trunc('day', $baseline) + INTERVAL '1 day')
      AND ($principal = '*' OR is_principal(useridentity, $principal))
),
-- The window's calls, one row per principal, service and call.
made AS (
    SELECT principal,
           eventsource,
           eventname,
           count(*) AS calls,
           min(eventtime) AS first_seen,
           max(eventtime) AS last_seen,
           array_to_string(array_sort(array_agg(DISTINCT sourceipaddress)), ', ') AS source_ips,
           first_value(eventid ORDER BY eventtime, eventid) AS eventid
    FROM calls
    GROUP BY 1, 2, 3
)
SELECT *
FROM made m
WHERE NOT EXISTS (
    SELECT 1 FROM seen s
    WHERE (s.principal IS NOT DISTINCT FROM m.principal)
      AND (s.eventsource IS NOT DISTINCT FROM m.eventsource)
      AND (s.eventname IS NOT DISTINCT FROM m.eventname)
)
ORDER BY first_seen DESC, principal, eventname, eventsource
