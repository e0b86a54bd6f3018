//! What an STS call minted: for a successful call of [`MINTING_CALLS`] to `sts.amazonaws.com`,
//! the access key of the temporary credentials in its response
//! (`responseElements.credentials.accessKeyId`) and the assumed-role session they belong to
//! (`responseElements.assumedRoleUser.arn`). Stored in plain columns of the row, these make
//! "which call minted this key" a lookup that bloom filters prune, where reading every STS call's
//! JSON grew with the lake.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;
use trailhouse_lake::schema::{MINTING_CALLS, STS_SOURCE};

use super::json_str;

#[derive(Deserialize)]
struct Response<'a> {
    #[serde(borrow, default)]
    credentials: Option<&'a RawValue>,
    #[serde(borrow, default, rename = "assumedRoleUser")]
    assumed_role_user: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct Credentials<'a> {
    #[serde(borrow, default, rename = "accessKeyId")]
    access_key_id: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct AssumedRoleUser<'a> {
    #[serde(borrow, default)]
    arn: Option<&'a RawValue>,
}

/// The key and session a record minted, from the JSON texts of its `eventSource`, `eventName`,
/// `errorCode` and `responseElements` members (as they stand in the record); `None` for anything
/// that is not a successful minting call or whose response does not say (a value of another
/// type, a response written as a string).
pub(super) fn minted<'a>(
    source: Option<&str>,
    name: Option<&str>,
    error: Option<&str>,
    response: Option<&'a str>,
) -> (Option<Cow<'a, str>>, Option<Cow<'a, str>>) {
    let is = |text: Option<&str>, want: &str| text.and_then(json_str).is_some_and(|v| v == want);
    let minting = is(source, STS_SOURCE) && MINTING_CALLS.iter().any(|call| is(name, call));
    let failed = error.is_some_and(|e| e.trim() != "null");
    let Some(response) = response.filter(|_| minting && !failed) else {
        return (None, None);
    };
    let Ok(response) = serde_json::from_str::<Response<'_>>(response) else {
        return (None, None);
    };
    let key = response
        .credentials
        .and_then(|c| serde_json::from_str::<Credentials<'_>>(c.get()).ok())
        .and_then(|c| c.access_key_id)
        .and_then(|k| json_str(k.get()))
        .filter(|k| !k.is_empty());
    let session = response
        .assumed_role_user
        .and_then(|u| serde_json::from_str::<AssumedRoleUser<'_>>(u.get()).ok())
        .and_then(|u| u.arn)
        .and_then(|a| json_str(a.get()))
        .filter(|a| !a.is_empty());
    (key, session)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(
        source: &str,
        name: &str,
        error: Option<&str>,
        response: &str,
    ) -> (Option<String>, Option<String>) {
        let (k, s) = minted(Some(source), Some(name), error, Some(response));
        (k.map(Cow::into_owned), s.map(Cow::into_owned))
    }

    const RESPONSE: &str = r#"{"credentials":{"accessKeyId":"ASIAX","sessionToken":"t","expiration":"soon"},
        "assumedRoleUser":{"assumedRoleId":"AROA:s","arn":"arn:aws:sts::1:assumed-role/R/s"}}"#;

    #[test]
    fn successful_minting_calls_give_their_key_and_session() {
        let sts = r#""sts.amazonaws.com""#;
        for call in MINTING_CALLS {
            let name = format!("\"{call}\"");
            assert_eq!(
                of(sts, &name, None, RESPONSE),
                (
                    Some("ASIAX".into()),
                    Some("arn:aws:sts::1:assumed-role/R/s".into())
                ),
                "{call}"
            );
        }
        // errorCode null is no error; GetSessionToken names no session.
        assert_eq!(
            of(
                sts,
                r#""GetSessionToken""#,
                Some("null"),
                r#"{"credentials":{"accessKeyId":"ASIAY"}}"#
            ),
            (Some("ASIAY".into()), None)
        );
    }

    #[test]
    fn look_alikes_mint_nothing() {
        let none = (None, None);
        let sts = r#""sts.amazonaws.com""#;
        // Failed call, other source, other call, odd response shapes.
        assert_eq!(
            of(sts, r#""AssumeRole""#, Some(r#""AccessDenied""#), RESPONSE),
            none
        );
        assert_eq!(
            of(r#""iam.amazonaws.com""#, r#""AssumeRole""#, None, RESPONSE),
            none
        );
        assert_eq!(of(sts, r#""GetCallerIdentity""#, None, RESPONSE), none);
        assert_eq!(of(sts, r#""AssumeRole""#, None, "null"), none);
        assert_eq!(
            of(sts, r#""AssumeRole""#, None, r#""{\"credentials\":{}}""#),
            none
        );
        assert_eq!(
            of(
                sts,
                r#""AssumeRole""#,
                None,
                r#"{"credentials":{"accessKeyId":7}}"#
            ),
            none
        );
        assert_eq!(
            of(
                sts,
                r#""AssumeRole""#,
                None,
                r#"{"credentials":"redacted"}"#
            ),
            none
        );
    }
}
