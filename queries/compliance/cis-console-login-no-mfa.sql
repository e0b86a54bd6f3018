-- summary: CIS 3.2/4.2/5.2: console sign-in without MFA, { ($.eventName = "ConsoleLogin") && ($.additionalEventData.MFAUsed != "Yes") }
-- control: cis-v1.2 3.2
-- control: cis-v1.4 4.2
-- control: cis-v1.5 4.2
-- control: cis-v2.0 4.2
-- control: cis-v3.0 4.2
-- control: cis-v4.0 4.2
-- control: cis-v5.0 4.2
-- control: cis-v6.0 5.2
-- control: security console-login-no-mfa
--
-- CloudWatch Logs filter semantics, as trailhouse implements them: `=` with `*` is a prefix or
-- suffix match, other values match exactly and case-sensitively; `!=` also matches a record
-- without the field (a missing value is not equal to the value), and `NOT EXISTS` is a missing key.
--
-- A sign-in whose additionalEventData has no MFAUsed matches (`!=` on a missing field), and
-- so does "yes" in lower case (values are case-sensitive).
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
       (responseelements ->> 'ConsoleLogin') AS result,
       eventid
FROM cloudtrail
WHERE eventtime >= $since AND eventtime < $until
  AND eventname = 'ConsoleLogin'
  AND (json_get_str(additionaleventdata, 'MFAUsed') IS DISTINCT FROM 'Yes')
ORDER BY eventtime DESC, eventid
