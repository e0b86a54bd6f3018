-- summary: Calls to sensitive services (secrets, keys, parameters, S3, DynamoDB, STS by default) made from an IP address rather than through a VPC endpoint
-- param: services string default secretsmanager.amazonaws.com,kms.amazonaws.com,ssm.amazonaws.com,s3.amazonaws.com,dynamodb.amazonaws.com,sts.amazonaws.com -- event sources to watch, comma-separated
-- control: security no-vpc-endpoint
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
       vpcendpointid,
       eventid
FROM cloudtrail
WHERE eventtime >= $since AND eventtime < $until
  AND vpcendpointid IS NULL
  AND array_has(string_to_array(replace($services, ' ', ''), ','), eventsource)
  AND eventtype = 'AwsApiCall'
  AND coalesce(useridentity.type, '') <> 'AWSService'
  AND (cidr_match(sourceipaddress, '0.0.0.0/0') OR cidr_match(sourceipaddress, '::/0'))
ORDER BY eventtime DESC, eventid
