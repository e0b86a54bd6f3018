-- The `credentials` table: one row per temporary key minted by STS, built from `cloudtrail`.
-- Of the copies of one call (the caller's account and the role's account both log a
-- cross-account AssumeRole), the caller's account's copy names the caller by ARN and is preferred.
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
       first_value(eventid ORDER BY pref, eventid) AS eventid,
       -- Which copy was chosen: merging a later ingest's calls into these rows needs it.
       min(pref) AS pref
FROM mints
GROUP BY minted_key
ORDER BY minted_key
