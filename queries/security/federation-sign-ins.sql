-- summary: Federated sign-ins: AssumeRoleWithSAML, AssumeRoleWithWebIdentity and GetFederationToken, with the identity provider's subject
-- control: security federation-sign-ins
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
       coalesce(json_get_str(responseelements, 'subject'), json_get_str(responseelements, 'subjectFromWebIdentityToken'),
                useridentity.username) AS subject,
       coalesce(json_get_str(responseelements, 'issuer'), json_get_str(responseelements, 'provider'),
                useridentity.identityprovider) AS provider,
       eventid
FROM cloudtrail
WHERE eventtime >= $since AND eventtime < $until
  AND eventsource = 'sts.amazonaws.com'
  AND eventname IN ('AssumeRoleWithSAML', 'AssumeRoleWithWebIdentity', 'GetFederationToken')
ORDER BY eventtime DESC, eventid
