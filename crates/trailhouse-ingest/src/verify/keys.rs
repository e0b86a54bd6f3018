//! The public keys digests are signed with, as `aws cloudtrail list-public-keys` prints them.
//! Nothing here calls AWS: the user saves that output once (per region, for the time range of
//! the trail) and names the files.

use std::collections::HashMap;
use std::path::Path;

use aws_lc_rs::signature::{ParsedPublicKey, RSA_PKCS1_2048_8192_SHA256};
use base64::Engine;
use serde_json::Value;

use super::VerifyError;

/// One public key, given as DER bytes (PKCS #1 `RSAPublicKey`, or X.509
/// `SubjectPublicKeyInfo`, which AWS's own examples also show), parsed once: a trail's hundred
/// thousand digests are checked with a handful of keys.
#[derive(Debug, Clone)]
pub struct PublicKey {
    /// The key, or why its bytes are not an RSA public key.
    pub key: Result<ParsedPublicKey, String>,
    pub valid_from: Option<String>,
    pub valid_until: Option<String>,
}

/// The keys, by fingerprint (lowercase hex).
#[derive(Debug, Clone, Default)]
pub struct PublicKeys {
    keys: HashMap<String, PublicKey>,
}

/// Why a signature did not verify.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignatureProblem {
    /// No key with the digest's fingerprint was given.
    UnknownKey,
    /// The signature is not hex.
    Malformed(String),
    /// The key does not verify it over the string to sign.
    Mismatch,
    /// The key given with the digest's fingerprint is not an RSA public key.
    BadKey(String),
}

impl PublicKeys {
    /// Reads `list-public-keys` output (`{"PublicKeyList": [{"Value", "Fingerprint", …}]}`, or
    /// the list alone) from each file.
    pub fn load(files: &[impl AsRef<Path>]) -> Result<Self, VerifyError> {
        let mut keys = Self::default();
        for file in files {
            let file = file.as_ref();
            let bad = |message: String| VerifyError::PublicKeys {
                path: file.to_path_buf(),
                message,
            };
            let text = std::fs::read(file).map_err(|e| bad(e.to_string()))?;
            keys.add_json(&text).map_err(bad)?;
        }
        Ok(keys)
    }

    /// Adds the keys of one `list-public-keys` output.
    pub fn add_json(&mut self, text: &[u8]) -> Result<(), String> {
        let value: Value =
            serde_json::from_slice(text).map_err(|e| format!("invalid JSON: {e}"))?;
        let list = match &value {
            Value::Array(items) => items,
            Value::Object(o) => match o.get("PublicKeyList") {
                Some(Value::Array(items)) => items,
                _ => {
                    return Err(
                        "no `PublicKeyList` (the output of `aws cloudtrail list-public-keys`)"
                            .into(),
                    );
                }
            },
            _ => return Err("neither a `PublicKeyList` object nor a list of keys".into()),
        };
        for (i, item) in list.iter().enumerate() {
            let text = |name: &str| item.get(name).and_then(Value::as_str);
            let value = text("Value").ok_or(format!("key {i}: no `Value`"))?;
            let fingerprint = text("Fingerprint").ok_or(format!("key {i}: no `Fingerprint`"))?;
            let der = base64::engine::general_purpose::STANDARD
                .decode(value.trim())
                .map_err(|e| format!("key {i} ({fingerprint}): `Value` is not base64: {e}"))?;
            let time = |name: &str| {
                item.get(name).map(|v| match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
            };
            let key = ParsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, &der)
                .map_err(|e| format!("key {fingerprint} is not an RSA public key ({e})"));
            self.keys.insert(
                fingerprint.to_ascii_lowercase(),
                PublicKey {
                    key,
                    valid_from: time("ValidityStartTime"),
                    valid_until: time("ValidityEndTime"),
                },
            );
        }
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Checks a hex `signature` (SHA256withRSA) of `message` with the key of `fingerprint`.
    pub fn verify(
        &self,
        fingerprint: &str,
        message: &[u8],
        signature: &str,
    ) -> Result<(), SignatureProblem> {
        let key = match self.keys.get(fingerprint) {
            Some(key) => key,
            None => self
                .keys
                .get(&fingerprint.to_ascii_lowercase())
                .ok_or(SignatureProblem::UnknownKey)?,
        };
        let key = key
            .key
            .as_ref()
            .map_err(|why| SignatureProblem::BadKey(why.clone()))?;
        let signature = hex::decode(signature.trim())
            .map_err(|e| SignatureProblem::Malformed(format!("the signature is not hex: {e}")))?;
        key.verify_sig(message, &signature)
            .map_err(|_| SignatureProblem::Mismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_read_from_the_clis_output_and_unknown_fingerprints_said() {
        let mut keys = PublicKeys::default();
        keys.add_json(
            br#"{"PublicKeyList":[{"ValidityStartTime":"2026-11-01T00:00:00+00:00","ValidityEndTime":"2026-12-01T00:00:00+00:00","Value":"AAEC","Fingerprint":"ABCDEF"}]}"#,
        )
        .expect("the CLI's shape");
        assert_eq!(keys.len(), 1);
        assert_eq!(
            keys.verify("0000", b"m", "00"),
            Err(SignatureProblem::UnknownKey)
        );
        // A key that is not a key does not verify anything, and says why.
        assert!(matches!(
            keys.verify("abcdef", b"m", "00"),
            Err(SignatureProblem::BadKey(why)) if why.contains("ABCDEF is not an RSA public key")
        ));
        let error = keys
            .add_json(br#"{"Keys":[]}"#)
            .expect_err("not the CLI's shape");
        assert!(error.contains("PublicKeyList"), "{error}");
        let error = keys
            .add_json(br#"[{"Value":"not base64!","Fingerprint":"aa"}]"#)
            .expect_err("not base64");
        assert!(error.contains("base64"), "{error}");
    }
}

/// A digest signed by OpenSSL (`openssl dgst -sha256 -sign`, not by any code of ours) over the
/// string to sign written out by hand from the scheme; its key saved as `list-public-keys` prints
/// it, once as PKCS #1 and once as SubjectPublicKeyInfo, with the MD5 of the PKCS #1 DER as its
/// fingerprint, as AWS's keys have.
#[cfg(test)]
mod openssl_vector {
    use super::super::digest::Digest;
    use super::*;

    const DIGEST: &[u8] = include_bytes!("testdata/digest0.json");
    const SIGNATURE: &str = include_str!("testdata/sig.hex");

    fn keys(file: &[u8]) -> PublicKeys {
        let mut keys = PublicKeys::default();
        keys.add_json(file).expect("the key file");
        keys
    }

    #[test]
    fn a_signature_made_by_openssl_verifies_with_either_form_of_its_key() {
        let digest = Digest::parse(DIGEST).expect("the digest");
        let message = digest.string_to_sign();
        for file in [
            &include_bytes!("testdata/keys-pkcs1.json")[..],
            &include_bytes!("testdata/keys-spki.json")[..],
        ] {
            let keys = keys(file);
            assert_eq!(
                keys.verify(&digest.fingerprint, message.as_bytes(), SIGNATURE),
                Ok(())
            );
            assert!(matches!(
                keys.verify(&digest.fingerprint, message.as_bytes(), "zz"),
                Err(SignatureProblem::Malformed(_))
            ));
            // One byte of the digest changed: its hash, so the string to sign, changes.
            let edited = String::from_utf8_lossy(DIGEST).replace(
                "01:10:31Z\",\"digestS3Bucket",
                "01:10:32Z\",\"digestS3Bucket",
            );
            let edited = Digest::parse(edited.as_bytes()).expect("still a digest");
            assert_eq!(
                keys.verify(
                    &edited.fingerprint,
                    edited.string_to_sign().as_bytes(),
                    SIGNATURE
                ),
                Err(SignatureProblem::Mismatch)
            );
            // The previous signature is part of what is signed: `null` is not the empty string.
            let mut chained = digest.clone();
            chained.previous_signature = Some(String::new());
            assert_eq!(
                keys.verify(
                    &chained.fingerprint,
                    chained.string_to_sign().as_bytes(),
                    SIGNATURE
                ),
                Err(SignatureProblem::Mismatch)
            );
        }
    }
}
