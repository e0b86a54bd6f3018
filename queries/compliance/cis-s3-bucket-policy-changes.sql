-- summary: CIS 3.8/4.8/5.8 and Security Hub CloudWatch.8: S3 bucket policy, ACL, CORS, lifecycle and replication changes
-- control: cis-v1.2 3.8
-- control: cis-v1.4 4.8
-- control: cis-v1.5 4.8
-- control: cis-v2.0 4.8
-- control: cis-v3.0 4.8
-- control: cis-v4.0 4.8
-- control: cis-v5.0 4.8
-- control: cis-v6.0 5.8
-- securityhub: CloudWatch.8
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
  AND eventsource = 's3.amazonaws.com'
  AND eventname IN ('PutBucketAcl', 'PutBucketPolicy', 'PutBucketCors', 'PutBucketLifecycle',
                    'PutBucketReplication', 'DeleteBucketPolicy', 'DeleteBucketCors', 'DeleteBucketLifecycle',
                    'DeleteBucketReplication')
ORDER BY eventtime DESC, eventid
