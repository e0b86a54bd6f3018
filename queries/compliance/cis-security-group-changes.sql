-- summary: CIS v1.2 3.10, v1.4-v4.0 4.10 and Security Hub CloudWatch.10: security group changes
-- control: cis-v1.2 3.10
-- control: cis-v1.4 4.10
-- control: cis-v1.5 4.10
-- control: cis-v2.0 4.10
-- control: cis-v3.0 4.10
-- control: cis-v4.0 4.10
-- securityhub: CloudWatch.10
--
-- ModifySecurityGroupRules is not in these versions' list (v5.0 added it: cis-security-group-changes-v5).
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
  AND eventname IN ('AuthorizeSecurityGroupIngress', 'AuthorizeSecurityGroupEgress', 'RevokeSecurityGroupIngress', 'RevokeSecurityGroupEgress',
                    'CreateSecurityGroup', 'DeleteSecurityGroup')
ORDER BY eventtime DESC, eventid
