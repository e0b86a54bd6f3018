-- summary: CIS 3.12/4.12/5.12 and Security Hub CloudWatch.12: customer and internet gateway changes
-- control: cis-v1.2 3.12
-- control: cis-v1.4 4.12
-- control: cis-v1.5 4.12
-- control: cis-v2.0 4.12
-- control: cis-v3.0 4.12
-- control: cis-v4.0 4.12
-- control: cis-v5.0 4.12
-- control: cis-v6.0 5.12
-- securityhub: CloudWatch.12
--
-- NAT and transit gateways are not in the benchmark's list; security/network-changes covers them.
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
  AND eventname IN ('CreateCustomerGateway', 'DeleteCustomerGateway', 'AttachInternetGateway', 'CreateInternetGateway',
                    'DeleteInternetGateway', 'DetachInternetGateway')
ORDER BY eventtime DESC, eventid
