-- summary: Access-denied and unauthorized calls by principal and API (a reconnaissance signal), most frequent first
-- param: principal string default * -- only this principal (user, role or session name, ARN, principal id or access key id); * for all
WITH per_ip AS (
    SELECT actor(useridentity) AS principal,
           eventsource,
           eventname,
           errorcode,
           sourceipaddress,
           count(*) AS calls,
           min(eventtime) AS first_seen,
           max(eventtime) AS last_seen
    FROM cloudtrail
    WHERE eventtime >= $since AND eventtime < $until
      AND access_denied(errorcode)
      AND ($principal = '*' OR is_principal(useridentity, $principal))
    GROUP BY 1, 2, 3, 4, 5
)
-- Counted per source IP first and the IPs listed after: a list of distinct values per group is
-- many times dearer to build than a group per value.
SELECT principal,
       eventsource,
       eventname,
       errorcode,
       sum(calls) AS calls,
       min(first_seen) AS first_seen,
       max(last_seen) AS last_seen,
       array_to_string(array_sort(array_agg(sourceipaddress)), ', ') AS source_ips
FROM per_ip
GROUP BY 1, 2, 3, 4
ORDER BY calls DESC, principal, eventname, eventsource, errorcode
