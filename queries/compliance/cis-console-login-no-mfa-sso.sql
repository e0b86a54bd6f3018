-- summary: CIS v2.0+ 4.2/5.2 (SSO variant) and Security Hub CloudWatch.3: successful IAM-user console sign-in without MFA
-- control: cis-v2.0 4.2
-- control: cis-v3.0 4.2
-- control: cis-v4.0 4.2
-- control: cis-v5.0 4.2
-- control: cis-v6.0 5.2
-- securityhub: CloudWatch.3
--
-- CloudWatch Logs filter semantics, as trailhouse implements them: `=` with `*` is a prefix or
-- suffix match, other values match exactly and case-sensitively; `!=` also matches a record
-- without the field (a missing value is not equal to the value), and `NOT EXISTS` is a missing key.
--
-- { ($.eventName = "ConsoleLogin") && ($.additionalEventData.MFAUsed != "Yes") &&
-- ($.userIdentity.type = "IAMUser") && ($.responseElements.ConsoleLogin = "Success") }: the variant the
-- benchmark offers to cut false positives from single sign-on (federated users sign in as roles).
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
       (additionaleventdata ->> 'MFAUsed') AS mfa_used,
       eventid
FROM cloudtrail
WHERE eventtime >= $since AND eventtime < $until
  AND eventname = 'ConsoleLogin'
  AND (json_get_str(additionaleventdata, 'MFAUsed') IS DISTINCT FROM 'Yes')
  AND useridentity.type = 'IAMUser'
  AND json_get_str(responseelements, 'ConsoleLogin') = 'Success'
ORDER BY eventtime DESC, eventid
