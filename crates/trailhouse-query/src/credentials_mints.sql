-- The STS calls that minted a temporary key, one row per copy of a call: the rows the
-- `credentials` table aggregates (credentials_agg.sql), in the column order of its cache file.
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
