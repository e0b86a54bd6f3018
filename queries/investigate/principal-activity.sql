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
  AND (useridentity.arn = $principal
       OR useridentity.username = $principal
       OR useridentity.principalid = $principal
       OR useridentity.accesskeyid = $principal
       OR useridentity.sessioncontext.sessionissuer.arn = $principal
       OR useridentity.sessioncontext.sessionissuer.username = $principal
       OR (useridentity.type = 'AssumedRole' AND split_part(useridentity.arn, '/', 3) = $principal))
ORDER BY eventtime DESC, eventid
