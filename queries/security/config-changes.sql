-- summary: AWS Config turned off or changed: recorders, delivery channels, rules, conformance packs, aggregators
-- control: security config-changes
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
  AND eventname IN ('StopConfigurationRecorder', 'DeleteConfigurationRecorder', 'DeleteDeliveryChannel', 'PutDeliveryChannel',
                    'PutConfigurationRecorder', 'DeleteConfigRule', 'DeleteConformancePack', 'DeleteConfigurationAggregator',
                    'DeleteEvaluationResults', 'DeleteRetentionConfiguration')
ORDER BY eventtime DESC, eventid
