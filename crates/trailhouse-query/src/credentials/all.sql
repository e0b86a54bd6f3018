-- Every minting call of a window (table `mints`, from mints.sql) in the order the calls were
-- made; the copies of one call (the same key at the same time, logged by two accounts) are
-- adjacent, the preferred one first.
SELECT *
FROM mints
ORDER BY eventtime, minted_key, pref, eventid
