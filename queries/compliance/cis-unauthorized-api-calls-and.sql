-- summary: CIS v2.0-v6.0 4.1/5.1, intended reading: (errorCode "*UnauthorizedOperation" or "AccessDenied*") and not from delivery.logs.amazonaws.com and not HeadBucket
-- control: cis-v2.0 4.1
-- control: cis-v3.0 4.1
-- control: cis-v4.0 4.1
-- control: cis-v5.0 4.1
-- control: cis-v6.0 5.1
--
-- CloudWatch Logs filter semantics, as trailhouse implements them: `=` with `*` is a prefix or
-- suffix match, other values match exactly and case-sensitively; `!=` also matches a record
-- without the field (a missing value is not equal to the value), and `NOT EXISTS` is a missing key.
--
-- The benchmark prints { ($.errorCode ="*UnauthorizedOperation") || ($.errorCode ="AccessDenied*")
-- && ($.sourceIPAddress!="delivery.logs.amazonaws.com") && ($.eventName!="HeadBucket") } without brackets.
-- This query reads it as (A || B) && C && D: the exclusions apply to both error codes, which is what
-- the exclusions are for. cis-unauthorized-api-calls-or is the other reading, A || (B && C && D).
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
       eventid
FROM cloudtrail
WHERE eventtime >= $since AND eventtime < $until
  AND (ends_with(errorcode, 'UnauthorizedOperation') OR starts_with(errorcode, 'AccessDenied'))
  AND (sourceipaddress IS DISTINCT FROM 'delivery.logs.amazonaws.com')
  AND (eventname IS DISTINCT FROM 'HeadBucket')
ORDER BY eventtime DESC, eventid
