-- summary: CIS v1.2 3.1 and Security Hub CloudWatch.2: unauthorized API calls, { ($.errorCode = "*UnauthorizedOperation") || ($.errorCode = "AccessDenied*") }
-- control: cis-v1.2 3.1
-- securityhub: CloudWatch.2
--
-- CloudWatch Logs filter semantics, as trailhouse implements them: `=` with `*` is a prefix or
-- suffix match, other values match exactly and case-sensitively; `!=` also matches a record
-- without the field (a missing value is not equal to the value), and `NOT EXISTS` is a missing key.
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
ORDER BY eventtime DESC, eventid
