-- summary: Who deleted, terminated or removed a resource (name, id, ARN or a fragment of one), newest first, with the origin of the credentials used
-- param: resource string -- bucket name, instance or snapshot id, key id, user/role/policy name, ARN, or a fragment
--
-- Matches Delete*, Terminate*, Remove* and Schedule*Deletion calls whose request parameters or
-- resources[].arn contain the text. `origin` is the principal whose STS call minted the
-- temporary key that signed the call (AssumeRole*, GetSessionToken, GetFederationToken).
WITH minted AS (
    SELECT (responseelements -> 'credentials' ->> 'accessKeyId') AS accesskeyid,
           min(coalesce(useridentity.arn, useridentity.principalid, useridentity.type) || ' via ' || eventname) AS origin
    FROM cloudtrail
    WHERE eventtime < $until
      AND eventsource = 'sts.amazonaws.com'
      AND eventname IN ('AssumeRole', 'AssumeRoleWithSAML', 'AssumeRoleWithWebIdentity', 'GetSessionToken', 'GetFederationToken')
      AND errorcode IS NULL
    GROUP BY 1
),
deletions AS (
    SELECT *
    FROM cloudtrail
    WHERE eventtime >= $since AND eventtime < $until
      AND (eventname LIKE 'Delete%' OR eventname LIKE 'Terminate%' OR eventname LIKE 'Remove%'
           OR (eventname LIKE 'Schedule%' AND eventname LIKE '%Deletion'))
),
named AS (
    SELECT eventid, recordhash FROM deletions WHERE strpos(coalesce(requestparameters, ''), $resource) > 0
    UNION
    SELECT eventid, recordhash FROM (SELECT eventid, recordhash, unnest(resources) AS r FROM deletions)
    WHERE strpos(coalesce(r['arn'], ''), $resource) > 0
)
SELECT d.eventtime,
       d.eventname,
       d.eventsource,
       coalesce(d.useridentity.arn, d.useridentity.invokedby, d.useridentity.principalid, d.useridentity.type) AS principal,
       m.origin,
       d.useridentity.accesskeyid AS accesskeyid,
       d.sourceipaddress,
       d.useragent,
       d.awsregion AS region,
       d.recipientaccountid AS account,
       d.errorcode,
       d.eventid
FROM deletions d
JOIN named n ON n.recordhash = d.recordhash AND n.eventid IS NOT DISTINCT FROM d.eventid
LEFT JOIN minted m ON m.accesskeyid = d.useridentity.accesskeyid
ORDER BY d.eventtime DESC, d.eventid
