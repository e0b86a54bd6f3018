-- summary: Who deleted, terminated or removed a resource (name, id, ARN or a fragment of one), newest first, with the origin of the credentials used
-- param: resource string -- bucket name, instance or snapshot id, key id, user/role/policy name, ARN, or a fragment
--
-- Matches Delete*, Terminate*, Remove* and Schedule*Deletion calls whose request parameters or
-- resources[].arn contain the text. For a call signed with temporary credentials, `origin` is
-- the first principal of the chain of STS calls (AssumeRole*, GetSessionToken,
-- GetFederationToken) that led to its key, through role chaining (`hops` calls away); see
-- session-origin for the whole chain.
WITH RECURSIVE calls AS (
    SELECT (responseelements -> 'credentials' ->> 'accessKeyId') AS minted_key,
           min(useridentity.accesskeyid) AS caller_key,
           min(coalesce(useridentity.arn, useridentity.principalid, useridentity.type)) AS caller,
           min(eventname) AS eventname
    FROM cloudtrail
    WHERE eventtime < $until
      AND eventsource = 'sts.amazonaws.com'
      AND eventname IN ('AssumeRole', 'AssumeRoleWithSAML', 'AssumeRoleWithWebIdentity', 'GetSessionToken', 'GetFederationToken')
      AND errorcode IS NULL
      AND (responseelements -> 'credentials' ->> 'accessKeyId') IS NOT NULL
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
),
hits AS (
    SELECT d.*
    FROM deletions d
    JOIN named n ON n.recordhash = d.recordhash AND n.eventid IS NOT DISTINCT FROM d.eventid
),
chain AS (
    SELECT c.minted_key AS start_key, 1 AS depth, c.caller_key, c.caller, c.eventname
    FROM calls c
    WHERE c.minted_key IN (SELECT useridentity.accesskeyid FROM hits)
    UNION ALL
    SELECT chain.start_key, chain.depth + 1 AS depth, c.caller_key, c.caller, c.eventname
    FROM chain
    JOIN calls c ON c.minted_key = chain.caller_key
    WHERE chain.depth < 10
),
origins AS (
    SELECT start_key,
           first_value(caller || ' via ' || eventname ORDER BY depth DESC) AS origin,
           max(depth) AS hops
    FROM chain
    GROUP BY start_key
)
SELECT h.eventtime,
       h.eventname,
       h.eventsource,
       coalesce(h.useridentity.arn, h.useridentity.invokedby, h.useridentity.principalid, h.useridentity.type) AS principal,
       o.origin,
       o.hops,
       h.useridentity.accesskeyid AS accesskeyid,
       h.sourceipaddress,
       h.useragent,
       h.awsregion AS region,
       h.recipientaccountid AS account,
       h.errorcode,
       h.eventid
FROM hits h
LEFT JOIN origins o ON o.start_key = h.useridentity.accesskeyid
ORDER BY h.eventtime DESC, h.eventid
