//! Verdicts on digests: each one's signature, and the links between digests of one chain.

use std::collections::HashMap;
use std::sync::Arc;

use super::digest::{ChainId, Digest, DigestName};
use super::keys::{PublicKeys, SignatureProblem};
use super::objects::layout_key;
use super::{DigestCheck, DigestVerdict};

/// A digest as read from the sources.
#[derive(Debug)]
pub struct ReadDigest {
    /// Where it was found (a path, or `s3://bucket/key`).
    pub name: String,
    /// Its key from `AWSLogs/` on.
    pub key: String,
    pub digest_name: DigestName,
    /// Its content, or why it could not be read.
    pub content: Result<Digest, String>,
    /// The signature in its S3 metadata (or a sidecar), if kept.
    pub signature: Option<String>,
    /// Inside the window asked for (the others are read for the signatures they record).
    pub in_window: bool,
}

/// Judges every digest in the window. `digests` may hold digests outside the window (the one
/// after it, whose record of the previous signature is needed); they get no verdict.
///
/// A digest's signature covers the SHA-256 of its file, and that file holds the SHA-256 and the
/// signature of the digest before it: once a digest is known to be CloudTrail's (its signature
/// verifies, or the digest after it vouches for it in turn), the one before it is CloudTrail's as
/// delivered when its SHA-256 is the one recorded, and its signature is not computed again. So a
/// chain costs one RSA verification at its newest digest (and at each digest where the hashes do
/// not link, which is checked by its own signature as before), not one per hour: a 90-day trail
/// of 51 regions and accounts has 110,000 digests.
pub fn judge(
    digests: &[ReadDigest],
    keys: &PublicKeys,
    since_key_time: Option<chrono::DateTime<chrono::Utc>>,
) -> Vec<DigestCheck> {
    let by_key: HashMap<&str, usize> = digests
        .iter()
        .enumerate()
        .map(|(i, d)| (d.key.as_str(), i))
        .collect();
    // Which digest records the signature of which: the next one links back by key.
    let mut next_of: HashMap<usize, usize> = HashMap::new();
    for (i, d) in digests.iter().enumerate() {
        if let Ok(content) = &d.content
            && let Some(previous) = &content.previous_object
            && let Some(&p) = by_key.get(layout_key(previous))
        {
            next_of.insert(p, i);
        }
    }
    // Each digest's chain: one value per chain, which its verdicts share (a chain has 2,000
    // digests in 90 days).
    let mut ids: HashMap<ChainId, Arc<ChainId>> = HashMap::new();
    let chain_of: Vec<Arc<ChainId>> = digests
        .iter()
        .map(|d| {
            let id = ids
                .entry(d.digest_name.chain())
                .or_insert_with_key(|id| Arc::new(id.clone()));
            Arc::clone(id)
        })
        .collect();
    drop(ids);
    // Each chain's digests (by its shared value), oldest first; each digest's neighbours in it.
    let mut chains: HashMap<*const ChainId, Vec<usize>> = HashMap::new();
    for (i, chain) in chain_of.iter().enumerate() {
        chains.entry(Arc::as_ptr(chain)).or_default().push(i);
    }
    let mut older_of = vec![None; digests.len()];
    let mut newer_of = vec![None; digests.len()];
    for members in chains.values_mut() {
        members.sort_by(|&a, &b| {
            (digests[a].digest_name.end, &digests[a].key)
                .cmp(&(digests[b].digest_name.end, &digests[b].key))
        });
        for pair in members.windows(2) {
            newer_of[pair[0]] = Some(pair[1]);
            older_of[pair[1]] = Some(pair[0]);
        }
    }
    let older = |i: usize| older_of[i];
    let newer = |i: usize| newer_of[i];

    // Newest first, so the digest after each one is judged before it.
    let mut order: Vec<usize> = (0..digests.len()).collect();
    order.sort_by(|&a, &b| {
        (digests[b].digest_name.end, &digests[b].key)
            .cmp(&(digests[a].digest_name.end, &digests[a].key))
    });
    // Digests known to be CloudTrail's as delivered.
    let mut authentic = vec![false; digests.len()];
    let mut checks = Vec::new();
    for i in order {
        let d = &digests[i];
        if !d.in_window {
            continue;
        }
        let mut check = DigestCheck {
            object: d.name.clone(),
            chain: Arc::clone(&chain_of[i]),
            end_time: d.digest_name.end,
            verdict: DigestVerdict::Valid,
            reasons: Vec::new(),
            log_files: 0,
        };
        let content = match &d.content {
            Ok(c) => c,
            Err(why) => {
                check.verdict = DigestVerdict::Unreadable;
                check.reasons.push(why.clone());
                checks.push(check);
                continue;
            }
        };
        check.log_files = content.log_files.len();
        let mut verdicts = Vec::new();

        if layout_key(&content.object) != d.key {
            verdicts.push(DigestVerdict::Moved);
            check.reasons.push(format!(
                "it says it was delivered to `{}`: a digest is signed for its place",
                content.object
            ));
        }

        // Its signature: its own metadata's, else the one the next digest recorded.
        let recorded = next_of
            .get(&i)
            .and_then(|&n| digests[n].content.as_ref().ok())
            .map(|n| n.previous_signature.clone());
        let mut candidates: Vec<(&str, String)> = Vec::new();
        if let Some(own) = &d.signature {
            candidates.push(("its S3 metadata", own.clone()));
        }
        if let Some(Some(next)) = &recorded
            && candidates
                .iter()
                .all(|(_, s)| !s.eq_ignore_ascii_case(next))
        {
            candidates.push(("the next digest", next.clone()));
        }
        // Vouched for by the digest after it: CloudTrail's, holding this one's hash, and the
        // signature it records is this one's own (when its S3 metadata kept one).
        let vouched = next_of
            .get(&i)
            .filter(|&&n| authentic[n])
            .and_then(|&n| digests[n].content.as_ref().ok())
            .filter(|n| n.previous_hash.as_deref() == Some(content.sha256.as_str()))
            .and_then(|n| n.previous_signature.as_ref())
            .filter(|s| {
                d.signature
                    .as_deref()
                    .is_none_or(|own| own.eq_ignore_ascii_case(s))
            });
        let mut verified: Option<String> = vouched.cloned();
        let mut problems = Vec::new();
        if verified.is_none() {
            let message = content.string_to_sign();
            for (from, signature) in &candidates {
                match keys.verify(&content.fingerprint, message.as_bytes(), signature) {
                    Ok(()) => {
                        verified = Some(signature.clone());
                        break;
                    }
                    Err(p) => problems.push((*from, p)),
                }
            }
        }
        authentic[i] = verified.is_some();
        if verified.is_none() {
            if candidates.is_empty() {
                verdicts.push(DigestVerdict::NoSignature);
                let after = newer(i).and_then(|n| digests[n].content.as_ref().ok());
                check.reasons.push(if let Some(after) = after {
                    match after.previous_object.as_deref() {
                        Some(p) if !by_key.contains_key(layout_key(p)) => format!(
                            "no signature: the digest after it, `{p}`, which recorded it, is \
                             missing (the next one links to it), and its S3 metadata was not kept"
                        ),
                        _ => "no signature: the digest after it does not link to it, and its S3 \
                              metadata was not kept"
                            .to_string(),
                    }
                } else if newer(i).is_some() {
                    "no signature: the digest after it cannot be read, and its S3 metadata was \
                     not kept"
                        .to_string()
                } else {
                    format!(
                        "no signature: it is the newest digest of its chain here and its S3 metadata \
                         was not kept (save `aws s3api head-object` of it as `<file>{}`)",
                        super::objects::SIDECAR
                    )
                });
            } else if problems
                .iter()
                .any(|(_, p)| *p == SignatureProblem::UnknownKey)
            {
                verdicts.push(DigestVerdict::UnknownKey);
                check.reasons.push(format!(
                    "no public key with fingerprint {} (give `aws cloudtrail list-public-keys \
                     --region {}` output covering {} with --public-keys)",
                    content.fingerprint, d.digest_name.region, content.end_time
                ));
            } else {
                verdicts.push(DigestVerdict::BadSignature);
                for (from, problem) in &problems {
                    check.reasons.push(match problem {
                        SignatureProblem::Malformed(why) => format!("signature from {from}: {why}"),
                        SignatureProblem::BadKey(why) => {
                            format!("{why}: check the file given with --public-keys")
                        }
                        _ => format!(
                            "the signature from {from} does not verify: the digest was changed, \
                             or signed with another key"
                        ),
                    });
                }
            }
        }

        // Its link to the digest before it.
        match (&content.previous_object, older(i)) {
            (None, Some(o)) => {
                verdicts.push(DigestVerdict::ChainBroken);
                let before = &digests[o];
                check.reasons.push(format!(
                    "the chain restarts here: it does not link to the digest before it (`{}`, \
                     ending {}); log file validation or logging was off from then to {}, or the \
                     digests between were deleted",
                    before.name,
                    before.digest_name.end.format("%Y-%m-%dT%H:%M:%SZ"),
                    content.start_time
                ));
            }
            (None, None) => {}
            (Some(previous), _) => match by_key.get(layout_key(previous)) {
                Some(&p) => match &digests[p].content {
                    Ok(before) => {
                        if content.previous_hash.as_deref() != Some(before.sha256.as_str()) {
                            verdicts.push(DigestVerdict::ChainBroken);
                            check.reasons.push(format!(
                                "the digest before it, `{}`, is not the one it was chained to: \
                                 its SHA-256 differs from previousDigestHashValue",
                                digests[p].name
                            ));
                        }
                        if let Some(own) = &digests[p].signature
                            && content
                                .previous_signature
                                .as_deref()
                                .is_none_or(|s| !s.eq_ignore_ascii_case(own))
                            && keys
                                .verify(
                                    &before.fingerprint,
                                    before.string_to_sign().as_bytes(),
                                    own,
                                )
                                .is_ok()
                        {
                            verdicts.push(DigestVerdict::ChainBroken);
                            check.reasons.push(format!(
                                "its previousDigestSignature is not the signature of `{}`",
                                digests[p].name
                            ));
                        }
                    }
                    Err(_) => {
                        // The one before is unreadable: its own verdict says so; the link
                        // cannot be checked.
                        verdicts.push(DigestVerdict::ChainBroken);
                        check.reasons.push(format!(
                            "the digest before it, `{}`, cannot be read",
                            digests[p].name
                        ));
                    }
                },
                None => {
                    let file = previous.rsplit('/').next().unwrap_or(previous);
                    let before_window = DigestName::parse(file)
                        .zip(since_key_time)
                        .is_some_and(|(n, since)| n.end < since);
                    if !before_window {
                        verdicts.push(DigestVerdict::ChainBroken);
                        check.reasons.push(format!(
                            "the digest before it, `{previous}`, is missing (deleted, or not in \
                             the sources)"
                        ));
                    }
                }
            },
        }
        check.verdict = verdicts.into_iter().min().unwrap_or(DigestVerdict::Valid);
        checks.push(check);
    }
    checks
}
