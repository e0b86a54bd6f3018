-- summary: CIS 3.7/4.7/5.7 and Security Hub CloudWatch.7: customer managed keys disabled or scheduled for deletion
-- control: cis-v1.2 3.7
-- control: cis-v1.4 4.7
-- control: cis-v1.5 4.7
-- control: cis-v2.0 4.7
-- control: cis-v3.0 4.7
-- control: cis-v4.0 4.7
-- control: cis-v5.0 4.7
-- control: cis-v6.0 5.7
-- securityhub: CloudWatch.7
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
  AND eventsource = 'kms.amazonaws.com'
  AND eventname IN ('DisableKey', 'ScheduleKeyDeletion')
ORDER BY eventtime DESC, eventid
