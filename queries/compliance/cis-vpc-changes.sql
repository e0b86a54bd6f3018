-- summary: CIS 3.14/4.14/5.14 and Security Hub CloudWatch.14: VPC and peering changes
-- control: cis-v1.2 3.14
-- control: cis-v1.4 4.14
-- control: cis-v1.5 4.14
-- control: cis-v2.0 4.14
-- control: cis-v3.0 4.14
-- control: cis-v4.0 4.14
-- control: cis-v5.0 4.14
-- control: cis-v6.0 5.14
-- securityhub: CloudWatch.14
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
  AND eventname IN ('CreateVpc', 'DeleteVpc', 'ModifyVpcAttribute', 'AcceptVpcPeeringConnection',
                    'CreateVpcPeeringConnection', 'DeleteVpcPeeringConnection', 'RejectVpcPeeringConnection', 'AttachClassicLinkVpc',
                    'DetachClassicLinkVpc', 'DisableVpcClassicLink', 'EnableVpcClassicLink')
ORDER BY eventtime DESC, eventid
