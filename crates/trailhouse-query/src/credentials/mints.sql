-- The STS calls that minted temporary credentials, one row per copy of a call (the caller's
-- account and the role's account both log a cross-account AssumeRole): the rows the
-- `credentials` table is made of. Ingest stores the key and session a call minted in plain
-- columns (`mintedkey`, `mintedsession`, with bloom filters); a lookup adds its predicate on them
-- and on `eventtime`. `pref` ranks the copies: the caller's account names the caller by ARN.
SELECT mintedkey AS minted_key,
       mintedsession AS minted_session,
       useridentity.accesskeyid AS caller_key,
       actor(useridentity) AS caller,
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
WHERE mintedkey IS NOT NULL
