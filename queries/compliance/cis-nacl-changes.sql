-- summary: CIS 3.11/4.11/5.11 and Security Hub CloudWatch.11: network ACL changes
-- control: cis-v1.2 3.11
-- control: cis-v1.4 4.11
-- control: cis-v1.5 4.11
-- control: cis-v2.0 4.11
-- control: cis-v3.0 4.11
-- control: cis-v4.0 4.11
-- control: cis-v5.0 4.11
-- control: cis-v6.0 5.11
-- securityhub: CloudWatch.11
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
  AND eventname IN ('CreateNetworkAcl', 'CreateNetworkAclEntry', 'DeleteNetworkAcl', 'DeleteNetworkAclEntry',
                    'ReplaceNetworkAclEntry', 'ReplaceNetworkAclAssociation')
ORDER BY eventtime DESC, eventid
