-- Every minted key once: the preferred copy of its call (by `pref`, then `eventid`), with the
-- members only some copy carries taken from any, in the order the calls were made. Reads the
-- minting calls of table `mints` (mints.sql, narrowed to a window).
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
       min(pref) AS pref
FROM mints
GROUP BY minted_key
ORDER BY eventtime, minted_key
