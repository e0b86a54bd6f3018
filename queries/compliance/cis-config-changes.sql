-- summary: CIS 3.9/4.9/5.9 and Security Hub CloudWatch.9: AWS Config recorder and delivery channel changes
-- control: cis-v1.2 3.9
-- control: cis-v1.4 4.9
-- control: cis-v1.5 4.9
-- control: cis-v2.0 4.9
-- control: cis-v3.0 4.9
-- control: cis-v4.0 4.9
-- control: cis-v5.0 4.9
-- control: cis-v6.0 5.9
-- securityhub: CloudWatch.9
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
  AND eventsource = 'config.amazonaws.com'
  AND eventname IN ('StopConfigurationRecorder', 'DeleteDeliveryChannel', 'PutDeliveryChannel', 'PutConfigurationRecorder')
ORDER BY eventtime DESC, eventid
