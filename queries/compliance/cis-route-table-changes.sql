-- summary: CIS 3.13/4.13/5.13 and Security Hub CloudWatch.13: route table changes
-- control: cis-v1.2 3.13
-- control: cis-v1.4 4.13
-- control: cis-v1.5 4.13
-- control: cis-v2.0 4.13
-- control: cis-v3.0 4.13
-- control: cis-v4.0 4.13
-- control: cis-v5.0 4.13
-- control: cis-v6.0 5.13
-- securityhub: CloudWatch.13
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
  AND eventname IN ('CreateRoute', 'CreateRouteTable', 'ReplaceRoute', 'ReplaceRouteTableAssociation',
                    'DeleteRouteTable', 'DeleteRoute', 'DisassociateRouteTable')
ORDER BY eventtime DESC, eventid
