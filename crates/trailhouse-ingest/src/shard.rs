//! Sharded ingest: `--shard K/N` reads a deterministic 1/N of the sources, split by account and
//! region, so N processes (on one machine or many) fill one lake at once.
//!
//! A record's duplicate deliveries share its account and region (CloudTrail delivers an event
//! under the folder of the account and region it happened in), so they meet in one shard and
//! deduplication holds across shards. Files outside CloudTrail's layout (no account and region
//! in their path) belong to shard 1.
//!
//! Each shard is a writer of its own: its own `txn` application id in the Delta log, ledger,
//! S3 cursors and lock, so shards commit side by side (their appends never conflict) and each
//! resumes where it stopped.

use std::str::FromStr;

/// One of `count` disjoint parts of the sources (`index` from 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: u32,
    pub count: u32,
}

impl FromStr for Shard {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("expected K/N with 1 <= K <= N (e.g. 2/4), got `{s}`");
        let (k, n) = s.split_once('/').ok_or_else(bad)?;
        let index: u32 = k.trim().parse().map_err(|_| bad())?;
        let count: u32 = n.trim().parse().map_err(|_| bad())?;
        if index == 0 || index > count {
            return Err(bad());
        }
        Ok(Self { index, count })
    }
}

impl Shard {
    /// Whether a source of this account and region (`None`: outside the layout) is this
    /// shard's.
    pub fn holds(&self, account_region: Option<(&str, &str)>) -> bool {
        match account_region {
            Some((account, region)) => {
                let h = xxhash_rust::xxh3::xxh3_64(format!("{account}/{region}").as_bytes());
                h % u64::from(self.count) == u64::from(self.index - 1)
            }
            None => self.index == 1,
        }
    }

    /// `shard-K-of-N`: how the shard's state and lock are named.
    pub fn name(&self) -> String {
        format!("shard-{}-of-{}", self.index, self.count)
    }
}

/// The account and region of a path in CloudTrail's layout
/// (`…/<account>/CloudTrail[-…]/<region>[/…]`), from its segments.
pub fn account_region<'a>(segments: &[&'a str]) -> Option<(&'a str, &'a str)> {
    let at = segments
        .iter()
        .position(|p| *p == "CloudTrail" || p.starts_with("CloudTrail-"))?;
    let account = segments.get(at.checked_sub(1)?)?;
    let region = segments.get(at + 1)?;
    (!account.is_empty() && !region.is_empty()).then_some((*account, *region))
}

/// Who writes: the lake's single ingest, or one shard. Names its Delta application id, ledger
/// folder, S3 cursor file and lock.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Writer {
    shard: Option<String>,
}

impl Writer {
    pub fn new(shard: Option<Shard>) -> Self {
        Self {
            shard: shard.map(|s| s.name()),
        }
    }

    /// The writer whose commits carry `app_id`; `None` for another application's.
    pub fn of_app_id(app_id: &str) -> Option<Self> {
        if app_id == crate::pipeline::APP_ID {
            return Some(Self::default());
        }
        let shard = app_id
            .strip_prefix(crate::pipeline::APP_ID)?
            .strip_prefix('.')?;
        Some(Self {
            shard: Some(shard.to_string()),
        })
    }

    /// The `txn` application id of its commits.
    pub fn app_id(&self) -> String {
        self.suffixed(crate::pipeline::APP_ID)
    }

    /// Its ledger's state folder.
    pub fn ledger(&self) -> String {
        self.suffixed("ledger")
    }

    /// Its S3 cursors' state file.
    pub fn cursors(&self) -> String {
        format!("{}.json", self.suffixed("s3-cursors"))
    }

    /// The shard's name, for its lock (`None`: the single writer).
    pub fn shard(&self) -> Option<&str> {
        self.shard.as_deref()
    }

    fn suffixed(&self, base: &str) -> String {
        match &self.shard {
            Some(s) => format!("{base}.{s}"),
            None => base.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_split_every_account_and_region_once() {
        let shards: Vec<Shard> = (1..=4).map(|k| Shard { index: k, count: 4 }).collect();
        let mut per_shard = [0; 4];
        for account in 0..30 {
            for region in ["us-east-1", "eu-west-1", "ap-south-1"] {
                let a = format!("{account:012}");
                let owners: Vec<usize> = (0..4)
                    .filter(|&i| shards[i].holds(Some((&a, region))))
                    .collect();
                assert_eq!(owners.len(), 1, "{a}/{region}: {owners:?}");
                per_shard[owners[0]] += 1;
            }
        }
        assert!(per_shard.iter().all(|&n| n > 10), "{per_shard:?}");
        assert!(shards[0].holds(None) && !shards[1].holds(None));
        assert!(Shard { index: 1, count: 1 }.holds(Some(("1", "x"))));
    }

    #[test]
    fn shard_text_and_layout_paths() {
        assert_eq!("2/4".parse(), Ok(Shard { index: 2, count: 4 }));
        for bad in ["0/4", "5/4", "2", "a/b", "1/0"] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
        let key = "AWSLogs/o-abc/111122223333/CloudTrail/eu-west-1/2026/11/04/x.json.gz";
        let segments: Vec<&str> = key.split('/').collect();
        assert_eq!(
            account_region(&segments),
            Some(("111122223333", "eu-west-1"))
        );
        assert_eq!(account_region(&["CloudTrail", "us-east-1"]), None);
        assert_eq!(account_region(&["logs", "x.json"]), None);
        let w = Writer::new(Some(Shard { index: 2, count: 4 }));
        assert_eq!(w.app_id(), "trailhouse-ingest.shard-2-of-4");
        assert_eq!(w.ledger(), "ledger.shard-2-of-4");
        assert_eq!(Writer::of_app_id(&w.app_id()), Some(w));
        assert_eq!(
            Writer::of_app_id("trailhouse-ingest"),
            Some(Writer::default())
        );
        assert_eq!(Writer::default().cursors(), "s3-cursors.json");
        assert_eq!(Writer::of_app_id("other-tool"), None);
    }
}
