-- summary: Everything from one source IP address or CIDR block, newest first
-- param: ip string -- an address (203.0.113.50) or a block (203.0.113.0/24, 2001:db8::/32)
SELECT eventtime,
       sourceipaddress,
       eventname,
       eventsource,
       actor(useridentity) AS principal,
       useridentity.accesskeyid AS accesskeyid,
       useragent,
       awsregion AS region,
       recipientaccountid AS account,
       errorcode,
       eventid
FROM cloudtrail
WHERE eventtime >= $since AND eventtime < $until
  AND cidr_match(sourceipaddress, $ip)
ORDER BY eventtime DESC, eventid
