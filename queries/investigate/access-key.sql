-- summary: Who owns an access key, where and when it was used (first/last seen, IPs, APIs), and for a temporary key (ASIA…) the STS call that minted it
-- param: key string -- the access key id (AKIA… or ASIA…)
WITH uses AS (
    SELECT eventtime,
           eventname,
           errorcode,
           sourceipaddress,
           awsregion,
           actor(useridentity) AS principal,
           useridentity.accesskeyid AS accesskeyid
    FROM cloudtrail
    WHERE eventtime >= $since AND eventtime < $until
      AND useridentity.accesskeyid = $key
),
used AS (
    SELECT min(accesskeyid) AS accesskeyid,
           array_to_string(array_sort(array_agg(DISTINCT principal)), ', ') AS owner,
           min(eventtime) AS first_seen,
           max(eventtime) AS last_seen,
           count(*) AS events,
           count(errorcode) AS errors,
           array_to_string(array_sort(array_agg(DISTINCT sourceipaddress)), ', ') AS source_ips,
           array_to_string(array_sort(array_agg(DISTINCT awsregion)), ', ') AS regions,
           array_to_string(array_sort(array_agg(DISTINCT eventname)), ', ') AS apis
    FROM uses
),
minted AS (
    -- At most one row: the STS call that minted the key, and the origin of its chain.
    SELECT min(minted_key) AS accesskeyid,
           min(caller) AS minted_by,
           min(eventname) AS minted_with,
           min(eventtime) AS minted_at,
           min(eventid) AS eventid,
           min(origin || ' via ' || origin_call) AS origin
    FROM credentials
    WHERE minted_key = $key AND eventtime < $until
)
SELECT coalesce(used.accesskeyid, minted.accesskeyid) AS accesskeyid,
       used.owner,
       used.first_seen,
       used.last_seen,
       used.events,
       used.errors,
       used.source_ips,
       used.regions,
       used.apis,
       minted.minted_by,
       minted.minted_with,
       minted.minted_at,
       minted.eventid,
       minted.origin
FROM used CROSS JOIN minted
