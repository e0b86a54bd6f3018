-- summary: CIS v1.4/v1.5 4.1 as printed: { ($.errorCode = "*UnauthorizedOperation") || ($.errorCode = "AccessDenied*") || ($.sourceIPAddress!="delivery.logs.amazonaws.com") || ($.eventName!="HeadBucket") } (matches nearly every event)
-- control: cis-v1.4 4.1
-- control: cis-v1.5 4.1
--
-- CloudWatch Logs filter semantics, as trailhouse implements them: `=` with `*` is a prefix or
-- suffix match, other values match exactly and case-sensitively; `!=` also matches a record
-- without the field (a missing value is not equal to the value), and `NOT EXISTS` is a missing key.
--
-- The four clauses are joined by ||, so any call that is not HeadBucket, or not from the log
-- delivery service, matches: the pattern as printed flags almost everything. Kept literal for
-- audits of that version; cis-unauthorized-api-calls-and is the reading later versions intend.
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
  AND (ends_with(errorcode, 'UnauthorizedOperation') OR starts_with(errorcode, 'AccessDenied') OR (sourceipaddress IS DISTINCT FROM 'delivery.logs.amazonaws.com') OR (eventname IS DISTINCT FROM 'HeadBucket'))
ORDER BY eventtime DESC, eventid
