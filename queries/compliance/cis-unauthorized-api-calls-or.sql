-- summary: CIS v2.0-v6.0 4.1/5.1, other reading: errorCode "*UnauthorizedOperation", or errorCode "AccessDenied*" not from delivery.logs.amazonaws.com and not HeadBucket
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
-- The unbracketed v2.0+ pattern read with && binding tighter than ||: A || (B && C && D). The
-- exclusions then apply to AccessDenied* only, so an UnauthorizedOperation on HeadBucket matches.
-- cis-unauthorized-api-calls-and is the reading trailhouse reports as intended.
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
  AND (ends_with(errorcode, 'UnauthorizedOperation')
       OR (starts_with(errorcode, 'AccessDenied') AND (sourceipaddress IS DISTINCT FROM 'delivery.logs.amazonaws.com') AND (eventname IS DISTINCT FROM 'HeadBucket')))
ORDER BY eventtime DESC, eventid
