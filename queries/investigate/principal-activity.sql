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
  AND is_principal(useridentity, $principal)
ORDER BY eventtime DESC, eventid
