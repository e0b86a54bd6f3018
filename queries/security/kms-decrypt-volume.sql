-- summary: Principals whose KMS Decrypt calls on a day of the window exceed their daily baseline (factor x the average, at least `minimum` calls)
-- param: baseline timestamp default 30d -- start of the baseline; it ends where the window starts
-- param: factor integer default 3 -- how many times the baseline's daily average a day must exceed
-- param: minimum integer default 100 -- ignore days with fewer Decrypt calls than this
-- control: security kms-decrypt-volume
--
-- One row per principal and day of the window. A principal absent from the baseline has an average
-- of 0, so any day with `minimum` calls or more is reported. eventid is the day's first call.
WITH decrypts AS (
    SELECT actor(useridentity) AS principal,
           useridentity.accesskeyid AS accesskeyid,
           eventtime,
           date_trunc('day', eventtime) AS day,
           sourceipaddress,
           eventid
    FROM cloudtrail
    WHERE eventtime >= $baseline AND eventtime < $until
      AND eventsource = 'kms.amazonaws.com'
      AND eventname = 'Decrypt'
      AND errorcode IS NULL
),
baseline AS (
    -- Average Decrypt calls per day over the baseline, which ends where the window starts.
    SELECT principal,
           count(*) / greatest(1.0, CAST(date_part('epoch', $since) - date_part('epoch', $baseline) AS DOUBLE) / 86400.0) AS per_day
    FROM decrypts
    WHERE eventtime < $since
    GROUP BY principal
),
window_days AS (
    SELECT principal,
           day,
           count(*) AS decrypts,
           min(eventtime) AS first_seen,
           max(eventtime) AS last_seen,
           min(accesskeyid) AS accesskeyid,
           min(sourceipaddress) AS sourceipaddress,
           min(eventid) AS eventid
    FROM decrypts
    WHERE eventtime >= $since
    GROUP BY principal, day
)
SELECT w.last_seen AS eventtime,
       w.principal,
       w.accesskeyid,
       w.sourceipaddress,
       w.day,
       w.decrypts,
       round(coalesce(b.per_day, 0), 1) AS baseline_per_day,
       w.first_seen,
       w.eventid
FROM window_days w
LEFT JOIN baseline b ON b.principal = w.principal
WHERE w.decrypts >= $minimum
  AND w.decrypts > $factor * coalesce(b.per_day, 0)
ORDER BY w.decrypts DESC, w.principal, w.day
