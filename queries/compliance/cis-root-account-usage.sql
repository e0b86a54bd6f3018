-- summary: CIS 3.3/4.3/5.3 and Security Hub CloudWatch.1: root account usage, { $.userIdentity.type = "Root" && $.userIdentity.invokedBy NOT EXISTS && $.eventType != "AwsServiceEvent" }
-- control: cis-v1.2 3.3
-- control: cis-v1.4 4.3
-- control: cis-v1.5 4.3
-- control: cis-v2.0 4.3
-- control: cis-v3.0 4.3
-- control: cis-v4.0 4.3
-- control: cis-v5.0 4.3
-- control: cis-v6.0 5.3
-- control: security root-usage
-- securityhub: CloudWatch.1
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
  AND useridentity.type = 'Root'
  AND useridentity.invokedby IS NULL
  AND (eventtype IS DISTINCT FROM 'AwsServiceEvent')
ORDER BY eventtime DESC, eventid
