-- summary: Everything that happened to one resource (name, id, ARN or a fragment of one), newest first
-- param: resource string -- bucket name, instance id, key id, user/role name, ARN, or a fragment
WITH named AS (
    SELECT eventid, recordhash
    FROM cloudtrail
    WHERE eventtime >= $since AND eventtime < $until
      AND (strpos(coalesce(requestparameters, ''), $resource) > 0
           OR strpos(coalesce(responseelements, ''), $resource) > 0)
    UNION
    SELECT eventid, recordhash
    FROM (SELECT eventid, recordhash, unnest(resources) AS r
          FROM cloudtrail
          WHERE eventtime >= $since AND eventtime < $until)
    WHERE strpos(coalesce(r['arn'], ''), $resource) > 0
)
SELECT e.eventtime,
       e.eventname,
       e.eventsource,
       coalesce(e.useridentity.arn, e.useridentity.invokedby, e.useridentity.principalid, e.useridentity.type) AS principal,
       e.useridentity.accesskeyid AS accesskeyid,
       e.sourceipaddress,
       e.useragent,
       e.awsregion AS region,
       e.recipientaccountid AS account,
       e.errorcode,
       e.readonly,
       e.eventid
FROM cloudtrail e
JOIN named n ON n.recordhash = e.recordhash AND n.eventid IS NOT DISTINCT FROM e.eventid
WHERE e.eventtime >= $since AND e.eventtime < $until
ORDER BY e.eventtime DESC, e.eventid
