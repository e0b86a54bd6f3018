-- summary: Access-denied and unauthorized calls by principal and API (a reconnaissance signal), most frequent first
-- param: principal string default * -- only this principal (user name, ARN, principal id, access key); * for all
SELECT actor(useridentity) AS principal,
       eventsource,
       eventname,
       errorcode,
       count(*) AS calls,
       min(eventtime) AS first_seen,
       max(eventtime) AS last_seen,
       array_to_string(array_sort(array_agg(DISTINCT sourceipaddress)), ', ') AS source_ips
FROM cloudtrail
WHERE eventtime >= $since AND eventtime < $until
  AND (errorcode IN ('AccessDenied', 'AccessDeniedException', 'UnauthorizedOperation', 'Client.UnauthorizedOperation',
                     'UnauthorizedAccess', 'Forbidden', 'AuthorizationError', 'NotAuthorized')
       OR errorcode LIKE '%AccessDenied%'
       OR errorcode LIKE '%Unauthorized%')
  AND ($principal = '*'
       OR useridentity.arn = $principal
       OR useridentity.username = $principal
       OR useridentity.principalid = $principal
       OR useridentity.accesskeyid = $principal)
GROUP BY 1, 2, 3, 4
ORDER BY calls DESC, principal, eventname
