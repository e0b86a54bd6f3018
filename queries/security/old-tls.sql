-- summary: Clients calling AWS with TLS older than 1.2 (tlsDetails.tlsVersion TLSv1 or TLSv1.1), by client and host
-- control: security old-tls
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
       tlsdetails.tlsversion AS tls_version,
       tlsdetails.ciphersuite AS cipher_suite,
       tlsdetails.clientprovidedhostheader AS host,
       eventid
FROM cloudtrail
WHERE eventtime >= $since AND eventtime < $until
  AND tlsdetails.tlsversion IN ('TLSv1', 'TLSv1.1', 'SSLv3')
ORDER BY eventtime DESC, eventid
