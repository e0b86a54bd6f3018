-- The `credentials` table: one row per temporary key minted by STS, built from `cloudtrail`.
-- Of the copies of one call (the caller's account and the role's account both log a
-- cross-account AssumeRole), the caller's account's copy names the caller by ARN and is preferred.
WITH mints AS (
    SELECT (responseelements -> 'credentials' ->> 'accessKeyId') AS minted_key,
           (responseelements -> 'assumedRoleUser' ->> 'arn') AS minted_session,
           useridentity.accesskeyid AS caller_key,
           coalesce(useridentity.arn, useridentity.principalid, useridentity.type) AS caller,
           useridentity.type AS caller_type,
           eventname,
           eventtime,
           json_get_str(requestparameters, 'roleArn') AS role_arn,
           json_get_str(requestparameters, 'roleSessionName') AS session_name,
           coalesce(json_get_str(requestparameters, 'sourceIdentity'),
                    useridentity.sessioncontext.sourceidentity) AS source_identity,
           coalesce(json_get_str(responseelements, 'subject'),
                    (responseelements -> 'subjectFromWebIdentityToken' ->> 0),
                    json_get_str(responseelements, 'subjectFromWebIdentityToken')) AS federated_subject,
           coalesce(json_get_str(responseelements, 'issuer'), json_get_str(responseelements, 'provider')) AS federated_issuer,
           sourceipaddress,
           recipientaccountid AS account,
           eventid,
           CASE WHEN useridentity.arn IS NOT NULL THEN 0 ELSE 1 END AS pref
    FROM cloudtrail
    WHERE eventsource = 'sts.amazonaws.com'
      AND eventname IN ('AssumeRole', 'AssumeRoleWithSAML', 'AssumeRoleWithWebIdentity', 'GetSessionToken', 'GetFederationToken')
      AND errorcode IS NULL
      AND (responseelements -> 'credentials' ->> 'accessKeyId') IS NOT NULL
)
SELECT minted_key,
       max(minted_session) AS minted_session,
       first_value(caller_key ORDER BY pref, eventid) AS caller_key,
       first_value(caller ORDER BY pref, eventid) AS caller,
       first_value(caller_type ORDER BY pref, eventid) AS caller_type,
       first_value(eventname ORDER BY pref, eventid) AS eventname,
       first_value(eventtime ORDER BY pref, eventid) AS eventtime,
       first_value(role_arn ORDER BY pref, eventid) AS role_arn,
       first_value(session_name ORDER BY pref, eventid) AS session_name,
       max(source_identity) AS source_identity,
       max(federated_subject) AS federated_subject,
       max(federated_issuer) AS federated_issuer,
       first_value(sourceipaddress ORDER BY pref, eventid) AS sourceipaddress,
       first_value(account ORDER BY pref, eventid) AS account,
       first_value(eventid ORDER BY pref, eventid) AS eventid
FROM mints
GROUP BY minted_key
ORDER BY minted_key
