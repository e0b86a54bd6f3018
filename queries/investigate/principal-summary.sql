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
  -- Each column is tested only when the value has a shape it can hold (an ARN is never a
  -- user, role or session name, which have no `:` or `/`; an access key id is capitals and
  -- digits): the planner answers the shape tests once for the bound value and reads only the
  -- columns that remain.
  AND ((starts_with($principal, 'arn:')
        AND (useridentity.arn = $principal
             OR useridentity.sessioncontext.sessionissuer.arn = $principal))
       OR (NOT starts_with($principal, 'arn:') AND useridentity.username = $principal)
       OR useridentity.principalid = $principal
       OR (regexp_like($principal, '^[A-Z0-9]+$') AND useridentity.accesskeyid = $principal)
       OR (strpos($principal, ':') = 0 AND strpos($principal, '/') = 0
           AND (useridentity.sessioncontext.sessionissuer.username = $principal
                OR (useridentity.type = 'AssumedRole'
                    AND split_part(useridentity.arn, '/', 3) = $principal))))
GROUP BY day, eventsource, eventname
ORDER BY day DESC, calls DESC, eventname
