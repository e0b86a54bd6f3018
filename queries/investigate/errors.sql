-- summary: Access-denied and unauthorized calls by principal and API (a reconnaissance signal), most frequent first
-- param: principal string default * -- only this principal (user name, ARN, principal id, access key); * for all
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
      -- The patterns catch AccessDenied(Exception) and (Client.)Unauthorized(Operation|Access);
      -- the three other refusals are compared one by one: as an IN list they measured slower.
      AND (errorcode LIKE '%AccessDenied%'
           OR errorcode LIKE '%Unauthorized%'
           OR errorcode = 'Forbidden'
           OR errorcode = 'AuthorizationError'
           OR errorcode = 'NotAuthorized')
      AND ($principal = '*'
           OR useridentity.arn = $principal
           OR useridentity.username = $principal
           OR useridentity.principalid = $principal
           OR useridentity.accesskeyid = $principal)
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
