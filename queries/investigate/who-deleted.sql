-- summary: Who deleted, terminated or removed a resource (name, id, ARN or a fragment of one), newest first, with the origin of the credentials used
-- param: resource string -- bucket name, instance or snapshot id, key id, user/role/policy name, ARN, or a fragment
--
-- Matches Delete*, Terminate*, Remove* and Schedule*Deletion calls whose request parameters or
-- resources[].arn contain the text. For a call signed with temporary credentials, `origin` is
-- the first principal of the chain of STS calls (AssumeRole*, GetSessionToken,
-- GetFederationToken) that led to its key, through role chaining (`hops` calls away), from the
-- `credentials` table; see session-origin for the whole chain. A temporary key is used within 36
-- hours of the call that minted it (the longest any STS credential lives), so only those hours
-- are searched for that call.
WITH hits AS (
    SELECT *
    FROM cloudtrail
    WHERE eventtime >= $since AND eventtime < $until
      AND (eventname LIKE 'Delete%' OR eventname LIKE 'Terminate%' OR eventname LIKE 'Remove%'
           OR (eventname LIKE 'Schedule%' AND eventname LIKE '%Deletion'))
      AND (strpos(coalesce(requestparameters, ''), $resource) > 0
           OR strpos(resource_arns(resources), $resource) > 0)
)
SELECT h.eventtime,
       h.eventname,
       h.eventsource,
       actor(h.useridentity) AS principal,
       c.origin || ' via ' || c.origin_call AS origin,
       c.hops,
       h.useridentity.accesskeyid AS accesskeyid,
       h.sourceipaddress,
       h.useragent,
       h.awsregion AS region,
       h.recipientaccountid AS account,
       h.errorcode,
       h.eventid
FROM hits h
LEFT JOIN credentials c
       ON c.minted_key = h.useridentity.accesskeyid
      AND c.eventtime BETWEEN h.eventtime - INTERVAL '36 hours' AND h.eventtime
ORDER BY h.eventtime DESC, h.eventid
