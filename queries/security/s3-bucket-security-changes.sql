-- summary: S3 bucket policy, ACL, encryption, public access block, ownership, versioning and logging changes
-- control: security s3-bucket-security-changes
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
       json_get_str(requestparameters, 'bucketName') AS bucket,
       eventid
FROM cloudtrail
WHERE eventtime >= $since AND eventtime < $until
  AND eventsource = 's3.amazonaws.com'
  AND eventname IN ('PutBucketPolicy', 'DeleteBucketPolicy', 'PutBucketAcl', 'PutObjectAcl',
                    'PutBucketEncryption', 'DeleteBucketEncryption', 'PutBucketPublicAccessBlock', 'DeleteBucketPublicAccessBlock',
                    'PutAccountPublicAccessBlock', 'DeleteAccountPublicAccessBlock', 'PutBucketOwnershipControls', 'DeleteBucketOwnershipControls',
                    'PutBucketVersioning', 'PutBucketLogging')
  AND errorcode IS NULL
ORDER BY eventtime DESC, eventid
