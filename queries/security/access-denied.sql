-- summary: Calls refused for lack of permission (access denied, unauthorized) — reconnaissance and broken automation, newest first
-- control: security access-denied
SELECT eventtime,
       eventname,
       eventsource,
       actor(useridentity) AS principal,
       useridentity.accesskeyid AS accesskeyid,
       sourceipaddress,
       useragent,
       awsregion AS region,
       recipientaccountid AS account,
       errorcode,
       errormessage,
       eventid
FROM cloudtrail
WHERE eventtime >= $since AND eventtime < $until
  AND access_denied(errorcode)
ORDER BY eventtime DESC, eventid
