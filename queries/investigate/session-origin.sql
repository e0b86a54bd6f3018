-- summary: The chain of STS calls behind a temporary access key (ASIA…), back to the first caller: role chaining and federation, across accounts
-- param: key string default - -- the temporary access key id (userIdentity.accessKeyId of the events it signed)
-- param: session string default - -- or the assumed-role session: its ARN (arn:aws:sts::…:assumed-role/ROLE/SESSION)
--
-- Each step is the STS call (AssumeRole, AssumeRoleWithSAML, AssumeRoleWithWebIdentity,
-- GetSessionToken, GetFederationToken) whose response minted the key of the step before; the
-- caller's own key leads to the next step. Depth 1 minted `key` (or created `session`). The chain stops at a long-term
-- key (AKIA…), a federated sign-in (SAML/OIDC subject shown), or after 10 steps (cycle-safe).
-- When the role's account and the caller's account both log the call, it is shown once. The
-- steps come from the `credentials` table (one row per minted key); a key is used within 36 hours
-- of the call that minted it, so each step is looked for in the 36 hours before the next.
WITH RECURSIVE chain AS (
    SELECT 1 AS depth, c.*
    FROM credentials c
    WHERE (c.minted_key = $key OR c.minted_session = $session)
      AND c.eventtime >= $since AND c.eventtime < $until
    UNION ALL
    SELECT chain.depth + 1 AS depth, c.*
    FROM chain
    JOIN credentials c
      ON c.minted_key = chain.caller_key
     AND c.eventtime BETWEEN chain.eventtime - INTERVAL '36 hours' AND chain.eventtime
    WHERE chain.depth < 10 AND c.minted_key <> chain.minted_key AND c.eventtime < $until
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
