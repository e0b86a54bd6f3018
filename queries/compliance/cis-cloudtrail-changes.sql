-- summary: CIS 3.5/4.5/5.5 and Security Hub CloudWatch.5: CloudTrail configuration changes (CreateTrail, UpdateTrail, DeleteTrail, StartLogging, StopLogging)
-- control: cis-v1.2 3.5
-- control: cis-v1.4 4.5
-- control: cis-v1.5 4.5
-- control: cis-v2.0 4.5
-- control: cis-v3.0 4.5
-- control: cis-v4.0 4.5
-- control: cis-v5.0 4.5
-- control: cis-v6.0 5.5
-- securityhub: CloudWatch.5
--
-- PutEventSelectors is not in the benchmark's list; security/trail-tampering covers it.
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
  AND eventname IN ('CreateTrail', 'UpdateTrail', 'DeleteTrail', 'StartLogging',
                    'StopLogging')
ORDER BY eventtime DESC, eventid
