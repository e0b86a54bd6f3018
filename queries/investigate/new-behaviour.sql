-- summary: API calls a principal made in the window (use --since, e.g. 7d) that it never made in the baseline before the window
-- param: principal string default * -- only this principal (user, role or session name, ARN, principal id or access key id); * for all
-- param: baseline timestamp default 90d -- start of the baseline; it ends where the window starts
-- setting: datafusion.optimizer.join_reordering = false
WITH calls AS (
    SELECT actor(useridentity) AS principal,
           eventsource,
           eventname,
           eventtime,
           sourceipaddress,
           eventid
    FROM cloudtrail
    WHERE eventtime >= $baseline AND eventtime < $until
      AND ($principal = '*' OR is_principal(useridentity, $principal))
),
-- A (principal, service, call) is new when none of its calls comes before the window: one lean
-- aggregate over the baseline and the window finds those, then only the window's calls of the
-- new ones are read again for their details. The join builds its table from `new` (written
-- first, and kept first by the setting above): the planner cannot tell that the aggregate is
-- small, and would otherwise hold all the window's calls in memory and filter the baseline's
-- tens of millions of rows against them.
new AS (
    SELECT principal, eventsource, eventname
    FROM calls
    GROUP BY principal, eventsource, eventname
    HAVING min(eventtime) >= $since
)
SELECT c.principal,
       c.eventsource,
       c.eventname,
       count(*) AS calls,
       min(c.eventtime) AS first_seen,
       max(c.eventtime) AS last_seen,
       array_to_string(array_sort(array_agg(DISTINCT c.sourceipaddress)), ', ') AS source_ips,
       first_value(c.eventid ORDER BY c.eventtime, c.eventid) AS eventid
FROM new n
JOIN calls c ON (n.principal IS NOT DISTINCT FROM c.principal)
          AND (n.eventsource IS NOT DISTINCT FROM c.eventsource)
          AND (n.eventname IS NOT DISTINCT FROM c.eventname)
WHERE c.eventtime >= $since
GROUP BY 1, 2, 3
ORDER BY first_seen DESC, principal, eventname
