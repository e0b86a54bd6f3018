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
  -- The patterns catch AccessDenied(Exception) and (Client.)Unauthorized(Operation|Access);
  -- the three other refusals are compared one by one: as an IN list they measured slower.
  AND (errorcode LIKE '%AccessDenied%'
       OR errorcode LIKE '%Unauthorized%'
       OR errorcode = 'Forbidden'
       OR errorcode = 'AuthorizationError'
       OR errorcode = 'NotAuthorized')
ORDER BY eventtime DESC, eventid
