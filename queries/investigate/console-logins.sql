-- summary: Console sign-ins with or without MFA, success or failure, by user and source IP, newest first
-- param: principal string default * -- only this principal (user name; role or session name, as an SSO sign-in's; ARN, principal id); * for all
SELECT eventtime,
       actor(useridentity) AS principal,
       useridentity.type AS identity_type,
       (responseelements ->> 'ConsoleLogin') AS result,
       (additionaleventdata ->> 'MFAUsed') AS mfa_used,
       CASE WHEN upper(additionaleventdata ->> 'MFAUsed') = 'YES' THEN true ELSE false END AS with_mfa,
       errormessage,
       sourceipaddress,
       useragent,
       awsregion AS region,
       recipientaccountid AS account,
       eventid
FROM cloudtrail
WHERE eventtime >= $since AND eventtime < $until
  AND eventname = 'ConsoleLogin'
  AND ($principal = '*' OR is_principal(useridentity, $principal))
ORDER BY eventtime DESC, eventid
