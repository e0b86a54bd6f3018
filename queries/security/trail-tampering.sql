-- summary: CloudTrail tampering: logging stopped, trails or event data stores deleted or changed, event selectors narrowed
-- control: security trail-tampering
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
       requestparameters,
       eventid
FROM cloudtrail
WHERE eventtime >= $since AND eventtime < $until
  AND eventsource = 'cloudtrail.amazonaws.com'
  AND eventname IN ('StopLogging', 'DeleteTrail', 'UpdateTrail', 'PutEventSelectors',
                    'PutInsightSelectors', 'DeleteEventDataStore', 'UpdateEventDataStore', 'StopEventDataStoreIngestion',
                    'DeleteChannel', 'UpdateChannel', 'DeleteResourcePolicy', 'DeregisterOrganizationDelegatedAdmin')
ORDER BY eventtime DESC, eventid
