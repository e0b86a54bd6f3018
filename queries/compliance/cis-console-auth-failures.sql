-- summary: CIS 3.6/4.6/5.6 and Security Hub CloudWatch.6: console authentication failures, { ($.eventName = ConsoleLogin) && ($.errorMessage = "Failed authentication") }
-- control: cis-v1.2 3.6
-- control: cis-v1.4 4.6
-- control: cis-v1.5 4.6
-- control: cis-v2.0 4.6
-- control: cis-v3.0 4.6
-- control: cis-v4.0 4.6
-- control: cis-v5.0 4.6
-- control: cis-v6.0 5.6
-- securityhub: CloudWatch.6
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
       errormessage,
       eventid
FROM cloudtrail
WHERE eventtime >= $since AND eventtime < $until
  AND eventname = 'ConsoleLogin'
  AND errormessage = 'Failed authentication'
ORDER BY eventtime DESC, eventid
