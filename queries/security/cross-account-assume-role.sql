-- summary: Roles assumed across accounts: the caller's account differs from the role's (AssumeRole that succeeded)
-- control: security cross-account-assume-role
--
-- AWS services assuming roles (no caller account) are left out. When both accounts' trails are
-- ingested, the call appears once per account (`account` tells which copy).
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
       useridentity.accountid AS caller_account,
       json_get_str(requestparameters, 'roleArn') AS role_arn,
       eventid
FROM cloudtrail
WHERE eventtime >= $since AND eventtime < $until
  AND eventsource = 'sts.amazonaws.com'
  AND eventname = 'AssumeRole'
  AND errorcode IS NULL
  AND useridentity.accountid IS NOT NULL
  AND split_part(json_get_str(requestparameters, 'roleArn'), ':', 5) <> useridentity.accountid
ORDER BY eventtime DESC, eventid
