-- summary: KMS keys disabled, scheduled for deletion, rotation turned off, key material deleted, key policy or alias changed
-- control: security kms-key-changes
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
  AND eventsource = 'kms.amazonaws.com'
  AND eventname IN ('DisableKey', 'ScheduleKeyDeletion', 'DisableKeyRotation', 'DeleteImportedKeyMaterial',
                    'PutKeyPolicy', 'DeleteAlias', 'UpdateAlias')
ORDER BY eventtime DESC, eventid
