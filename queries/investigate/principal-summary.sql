-- summary: What one principal did per day and API: calls, errors, first and last time
-- param: principal string -- user name, role name, session name, ARN, principal id or access key id
SELECT day,
       eventsource,
       eventname,
       count(*) AS calls,
       count(errorcode) AS errors,
       min(eventtime) AS first_seen,
       max(eventtime) AS last_seen
FROM cloudtrail
WHERE eventtime >= $since AND eventtime < $until
  AND is_principal(useridentity, $principal)
GROUP BY day, eventsource, eventname
ORDER BY day DESC, calls DESC, eventname
