//! The temporary keys of a control's principals, the most recently used first, gathered as the
//! control's rows stream: a principal's keys are kept to a cap ([`KEYS_PER_PRINCIPAL`], twice
//! that before they are cut back), so the memory follows the distinct keys of each principal, up
//! to that bound, not the control's events. The report looks up the origins of its listed
//! principals' keys.
//!
//! Dropping a principal's least recently used keys as more arrive keeps the answer exact: a
//! dropped key was used before the cap's others kept, which only grow more recent; it comes
//! back only with a later use, which is then its last.
//!
//! [`RecentKeys::bytes`] is what the lists hold, for the memory pool: when the pool cannot give
//! that much, the report lowers the cap ([`RecentKeys::cut_to`]) and says so.

use std::cmp::Ordering;
use std::collections::HashMap;

/// Temporary keys kept per listed principal, for their origins: the most recently used.
pub const KEYS_PER_PRINCIPAL: usize = 1_000;

/// "Not used at a known time", below every time.
const NO_TIME: i64 = i64::MIN;

/// Bytes of a principal's entry besides its keys (its name's map slot, two empty maps).
const PRINCIPAL_BYTES: usize = 128;

/// Keys and when each was last used, by principal.
#[derive(Debug)]
pub struct RecentKeys {
    by_principal: HashMap<String, Recent>,
    /// Keys kept per principal.
    cap: usize,
    /// What the lists hold, as [`Recent::bytes`] and [`PRINCIPAL_BYTES`] count it.
    bytes: usize,
}

impl Default for RecentKeys {
    fn default() -> Self {
        RecentKeys {
            by_principal: HashMap::new(),
            cap: KEYS_PER_PRINCIPAL,
            bytes: 0,
        }
    }
}

impl RecentKeys {
    /// Notes a use of `key` by `principal` at `at` (`None`: the row had no time).
    pub fn add(&mut self, principal: &str, key: &str, at: Option<i64>) {
        let recent = match self.by_principal.get_mut(principal) {
            Some(recent) => recent,
            None => {
                self.bytes += PRINCIPAL_BYTES + principal.len();
                self.by_principal.entry(principal.to_string()).or_default()
            }
        };
        let before = recent.bytes();
        recent.add(key, at.unwrap_or(NO_TIME), self.cap);
        self.bytes = self.bytes + recent.bytes() - before;
    }

    /// `principal`'s most recently used keys (as many as the cap), the most recent first (keys
    /// without a time last, ties by key), taken out.
    pub fn take(&mut self, principal: &str) -> Vec<(String, Option<i64>)> {
        self.by_principal
            .remove(principal)
            .map(|r| {
                r.most_recent(self.cap)
                    .into_iter()
                    .map(|(k, t)| (k, (t != NO_TIME).then_some(t)))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The bytes the lists hold.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Keys kept per principal.
    pub fn cap(&self) -> usize {
        self.cap
    }

    /// Keeps only each principal's `cap` most recently used keys from now on (a smaller cap
    /// than before), giving the memory back.
    pub fn cut_to(&mut self, cap: usize) {
        self.cap = cap.min(self.cap);
        self.bytes = 0;
        for (principal, recent) in &mut self.by_principal {
            *recent = Recent::from(recent.most_recent(self.cap), self.cap);
            self.bytes += PRINCIPAL_BYTES + principal.len() + recent.bytes();
        }
    }
}

/// One principal's keys. Keys of capitals and digits (AWS key ids: `ASIA` and 16 more) are held
/// as numbers, 32 bytes a key with no allocation of its own, for there are millions of them;
/// any other key as text.
#[derive(Debug, Default)]
struct Recent {
    packed: HashMap<u128, i64>,
    text: HashMap<Box<str>, i64>,
    /// The length of the keys in `text`.
    text_bytes: usize,
}

impl Recent {
    /// The keys of `kept`, a list [`Recent::most_recent`] made.
    fn from(kept: Vec<(String, i64)>, cap: usize) -> Self {
        let mut recent = Recent::default();
        for (k, t) in kept {
            recent.add(&k, t, cap);
        }
        recent
    }

    fn add(&mut self, key: &str, at: i64, cap: usize) {
        let added = match pack(key) {
            Some(k) => Self::note(self.packed.entry(k), at),
            None => match self.text.get_mut(key) {
                Some(last) => {
                    *last = (*last).max(at);
                    false
                }
                None => {
                    self.text_bytes += key.len();
                    self.text.insert(key.into(), at).is_none()
                }
            },
        };
        if added && self.packed.len() + self.text.len() >= 2 * cap {
            *self = Recent::from(self.most_recent(cap), cap);
        }
    }

    /// The memory of the two maps (their slots, a control byte each) and of the text keys.
    fn bytes(&self) -> usize {
        self.packed.capacity() * (size_of::<(u128, i64)>() + 1)
            + self.text.capacity() * (size_of::<(Box<str>, i64)>() + 1)
            + self.text_bytes
    }

    /// Notes a use in `entry`; true when the key is new.
    fn note(entry: std::collections::hash_map::Entry<'_, u128, i64>, at: i64) -> bool {
        match entry {
            std::collections::hash_map::Entry::Occupied(mut e) => {
                let last = e.get_mut();
                *last = (*last).max(at);
                false
            }
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert(at);
                true
            }
        }
    }

    /// The `cap` most recently used, the most recent first, ties by key.
    fn most_recent(&self, cap: usize) -> Vec<(String, i64)> {
        let mut v: Vec<(String, i64)> = self
            .packed
            .iter()
            .map(|(k, t)| (unpack(*k), *t))
            .chain(self.text.iter().map(|(k, t)| (k.to_string(), *t)))
            .collect();
        let order = |a: &(String, i64), b: &(String, i64)| -> Ordering {
            b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0))
        };
        if v.len() > cap {
            v.select_nth_unstable_by(cap, order);
            v.truncate(cap);
        }
        v.sort_unstable_by(order);
        v
    }
}

/// The digits of [`pack`]: 0 is the end of the key.
const DIGITS: &[u8; 36] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";

/// A key of at most 24 capitals and digits as a number (base 37, 37^24 < 2^128), or `None`.
fn pack(key: &str) -> Option<u128> {
    if key.is_empty() || key.len() > 24 {
        return None;
    }
    key.bytes().rev().try_fold(0u128, |n, b| {
        let d = match b {
            b'A'..=b'Z' => b - b'A' + 1,
            b'0'..=b'9' => b - b'0' + 27,
            _ => return None,
        };
        Some(n * 37 + u128::from(d))
    })
}

fn unpack(mut n: u128) -> String {
    let mut s = String::with_capacity(24);
    while n > 0 {
        let d = (n % 37) as usize;
        if let Some(&c) = d.checked_sub(1).and_then(|d| DIGITS.get(d)) {
            s.push(c as char);
        }
        n /= 37;
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fixed pseudo-random sequence (xorshift64).
    struct Numbers(u64);
    impl Numbers {
        fn below(&mut self, n: u64) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0 % n
        }
    }

    /// Every use kept, then ordered: what the bounded lists must agree with.
    fn naive(
        uses: &[(String, String, Option<i64>)],
        principal: &str,
    ) -> Vec<(String, Option<i64>)> {
        let mut last: HashMap<String, Option<i64>> = HashMap::new();
        for (p, k, t) in uses {
            if p == principal {
                let e = last.entry(k.clone()).or_insert(*t);
                *e = (*e).max(*t);
            }
        }
        let mut v: Vec<_> = last.into_iter().collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        v.truncate(KEYS_PER_PRINCIPAL);
        v
    }

    #[test]
    fn keeps_each_principals_most_recent_keys_exactly_out_of_order() {
        let mut rng = Numbers(0x9e37_79b9_7f4a_7c15);
        // Two principals: one with many more keys than are kept, used again and again in no
        // particular order (some uses without a time), one with a few.
        let mut uses = Vec::new();
        for _ in 0..60_000 {
            let k = rng.below(5_000);
            let t = (rng.below(20) > 0).then(|| rng.below(1_000_000) as i64);
            uses.push(("busy".to_string(), format!("ASIA{k:08}"), t));
        }
        for k in 0..5 {
            uses.push(("quiet".to_string(), format!("ASIAQ{k}"), None));
        }
        uses.push(("quiet".to_string(), "ASIAQ3".to_string(), Some(5)));
        let mut recent = RecentKeys::default();
        for (p, k, t) in &uses {
            recent.add(p, k, *t);
        }
        let busy = recent.take("busy");
        assert_eq!(busy.len(), KEYS_PER_PRINCIPAL);
        assert_eq!(busy, naive(&uses, "busy"));
        let quiet = recent.take("quiet");
        assert_eq!(quiet.first(), Some(&("ASIAQ3".to_string(), Some(5))));
        assert_eq!(quiet, naive(&uses, "quiet"));
        assert!(recent.take("quiet").is_empty(), "taken out");
        assert!(recent.take("nobody").is_empty());
    }

    #[test]
    fn keys_of_capitals_and_digits_pack_into_numbers_and_back() {
        for key in [
            "ASIAZU3SBQO4MIXHG5TH",
            "A",
            "9",
            "ZZZZZZZZZZZZZZZZZZZZZZZZ",
            "99999999999999999999AAAA",
        ] {
            assert_eq!(pack(key).map(unpack).as_deref(), Some(key));
        }
        for key in [
            "",
            "asia1234",
            "ASIA-1",
            "ZZZZZZZZZZZZZZZZZZZZZZZZZ",
            "ÄSIA",
        ] {
            assert_eq!(pack(key), None, "{key}");
        }
        // Both kinds in one principal's list, in one order.
        let mut recent = RecentKeys::default();
        recent.add("p", "other-key", Some(3));
        recent.add("p", "ASIAB", Some(2));
        recent.add("p", "ASIAA", Some(2));
        recent.add("p", "ASIAC", None);
        let keys = recent.take("p");
        let names: Vec<&str> = keys.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(names, ["other-key", "ASIAA", "ASIAB", "ASIAC"]);
        assert_eq!(keys[3].1, None);
    }

    #[test]
    fn a_dropped_key_used_again_later_comes_back_with_its_last_use() {
        let mut recent = RecentKeys::default();
        recent.add("p", "ASIAOLD", Some(0));
        for k in 0..2 * KEYS_PER_PRINCIPAL {
            recent.add("p", &format!("ASIA{k:08}"), Some(10 + k as i64));
        }
        recent.add("p", "ASIAOLD", Some(1_000_000));
        let keys = recent.take("p");
        assert_eq!(
            keys.first(),
            Some(&("ASIAOLD".to_string(), Some(1_000_000)))
        );
        assert_eq!(keys.len(), KEYS_PER_PRINCIPAL);
    }

    #[test]
    fn a_lower_cap_keeps_the_most_recent_keys_and_gives_memory_back() {
        let mut rng = Numbers(0x2545_f491_4f6c_dd1d);
        let mut uses = Vec::new();
        for i in 0..20_000 {
            let k = rng.below(3_000);
            let p = ["a", "b", "c"][i % 3];
            uses.push((
                p.to_string(),
                format!("ASIA{k:08}"),
                Some(rng.below(1 << 40) as i64),
            ));
        }
        uses.push(("a".to_string(), "not-a-key-id".to_string(), Some(1 << 41)));
        let mut recent = RecentKeys::default();
        for (p, k, t) in &uses[..10_000] {
            recent.add(p, k, *t);
        }
        let full = recent.bytes();
        assert!(full > 3 * KEYS_PER_PRINCIPAL * 24, "{full} bytes");
        recent.cut_to(50);
        assert_eq!(recent.cap(), 50);
        assert!(
            recent.bytes() < full / 10,
            "{} of {full} bytes",
            recent.bytes()
        );
        for (p, k, t) in &uses[10_000..] {
            recent.add(p, k, *t);
        }
        assert!(
            recent.bytes() < full / 10,
            "{} of {full} bytes",
            recent.bytes()
        );
        for p in ["a", "b", "c"] {
            let mut expected = naive(&uses, p);
            expected.truncate(50);
            assert_eq!(recent.take(p), expected, "{p}");
        }
        // A cut never raises the cap.
        recent.cut_to(500);
        assert_eq!(recent.cap(), 50);
    }
}
