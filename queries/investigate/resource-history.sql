-- summary: Everything that happened to one resource (name, id, ARN or a fragment of one), newest first
-- param: resource string -- bucket name, instance id, key id, user/role name, ARN, or a fragment
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
       readonly,
       eventid
FROM cloudtrail
WHERE eventtime >= $since AND eventtime < $until
  AND (strpos(coalesce(requestparameters, ''), $resource) > 0
       OR strpos(coalesce(responseelements, ''), $resource) > 0
       OR strpos(resource_arns(resources), $resource) > 0)
ORDER BY eventtime DESC, eventid
