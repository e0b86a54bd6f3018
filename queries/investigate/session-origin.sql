-- summary: The chain of STS calls behind a temporary access key (ASIA…), back to the first caller: role chaining and federation, across accounts
-- param: key string default - -- the temporary access key id (userIdentity.accessKeyId of the events it signed)
-- param: session string default - -- or the assumed-role session: its ARN (arn:aws:sts::…:assumed-role/ROLE/SESSION)
--
-- Each step is the STS call (AssumeRole, AssumeRoleWithSAML, AssumeRoleWithWebIdentity,
-- GetSessionToken, GetFederationToken) whose response minted the key of the step before; the
-- caller's own key leads to the next step. Depth 1 minted `key` (or created `session`). The chain stops at a long-term
-- key (AKIA…), a federated sign-in (SAML/OIDC subject shown), or after 10 steps (cycle-safe).
-- When the role's account and the caller's account both log the call, it is shown once.
WITH RECURSIVE mints AS (
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
           -- Of the copies of one call, the caller's account's names the caller by ARN.
           CASE WHEN useridentity.arn IS NOT NULL THEN 0 ELSE 1 END AS pref
    FROM cloudtrail
    WHERE eventtime < $until
      AND eventsource = 'sts.amazonaws.com'
      AND eventname IN ('AssumeRole', 'AssumeRoleWithSAML', 'AssumeRoleWithWebIdentity', 'GetSessionToken', 'GetFederationToken')
      AND errorcode IS NULL
      AND (responseelements -> 'credentials' ->> 'accessKeyId') IS NOT NULL
),
calls AS (
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
    -- One step per key (a key is minted once; the copies of a cross-account call share it),
    -- so the chain is a path, never a fan-out.
    GROUP BY minted_key
),
chain AS (
    SELECT 1 AS depth, c.*
    FROM calls c
    WHERE (c.minted_key = $key OR c.minted_session = $session) AND c.eventtime >= $since
    UNION ALL
    SELECT chain.depth + 1 AS depth, c.*
    FROM chain
    JOIN calls c ON c.minted_key = chain.caller_key
    WHERE chain.depth < 10 AND c.minted_key <> chain.minted_key
)
SELECT depth,
       minted_key,
       minted_session,
       eventname,
       eventtime,
       caller,
       caller_type,
       caller_key,
       role_arn,
       session_name,
       source_identity,
       federated_subject,
       federated_issuer,
       sourceipaddress,
       account,
       eventid
FROM chain
ORDER BY depth, eventtime
