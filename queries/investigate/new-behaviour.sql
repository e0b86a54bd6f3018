-- summary: API calls a principal made in the window (use --since, e.g. 7d) that it never made in the baseline before the window
-- param: principal string default * -- only this principal (user name, ARN, principal id, access key); * for all
-- param: baseline timestamp default 90d -- start of the baseline; it ends where the window starts
WITH calls AS (
    SELECT actor(useridentity) AS principal,
           eventsource,
           eventname,
           eventtime,
           sourceipaddress,
           eventid
    FROM cloudtrail
    WHERE eventtime >= $baseline AND eventtime < $until
      AND ($principal = '*'
           OR useridentity.arn = $principal
           OR useridentity.username = $principal
           OR useridentity.principalid = $principal
           OR useridentity.accesskeyid = $principal)
),
known AS (
    SELECT DISTINCT principal, eventsource, eventname FROM calls WHERE eventtime < $since
)
SELECT c.principal,
       c.eventsource,
       c.eventname,
       count(*) AS calls,
       min(c.eventtime) AS first_seen,
       max(c.eventtime) AS last_seen,
       array_to_string(array_sort(array_agg(DISTINCT c.sourceipaddress)), ', ') AS source_ips,
       first_value(c.eventid ORDER BY c.eventtime, c.eventid) AS eventid
FROM calls c
LEFT JOIN known k ON k.principal = c.principal AND k.eventsource = c.eventsource AND k.eventname = c.eventname
WHERE c.eventtime >= $since AND k.eventname IS NULL
GROUP BY 1, 2, 3
ORDER BY first_seen DESC, principal, eventname
