-- summary: Everything one principal did (user, role, assumed-role session, ARN, principal id or access key), newest first
-- param: principal string -- user name, role name, session name, ARN, principal id or access key id
SELECT DISTINCT
       eventtime,
       eventname,
       eventsource,
       actor(useridentity) AS principal,
       useridentity.accesskeyid AS accesskeyid,
       sourceipaddress,
       useragent,
       awsregion AS region,
       recipientaccountid AS account,
       errorcode,
       eventid
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
ORDER BY eventtime DESC, eventid
