//! Sigma rules for CloudTrail, compiled to one SQL predicate over table `cloudtrail`.
//!
//! A rule's `detection` becomes a boolean SQL expression with the semantics of the Sigma
//! specification, not of any one backend:
//!
//! - **Fields** are CloudTrail's keys in any case (`eventName`, `EVENTNAME`), nested keys by dots
//!   (`userIdentity.sessionContext.sessionIssuer.type`, `requestParameters.bucketName`,
//!   `additionalEventData.MFAUsed`); see [`field`] for how each lands on the table.
//! - **Values** match case-insensitively, with `*` and `?` wildcards and Sigma's backslash
//!   escapes; `re` is case-sensitive unless `|i`, `cased` makes any value case-sensitive; see
//!   [`pattern`].
//! - **Absent fields** match no value, and `not` of such a match is true: every field test is
//!   two-valued (never SQL NULL), so `selection and not filter` keeps a row whose filter field is
//!   missing, where three-valued SQL would silently drop it.
//! - **Conditions**: `and`, `or`, `not`, parentheses, `1 of`/`all of` a pattern or `them`; see
//!   [`condition`].
//!
//! Whatever the compiler cannot honour exactly (keyword search over a whole record, aggregations,
//! correlation rules, placeholders, some modifiers) is refused with [`SigmaError::Unsupported`],
//! naming the construct: a rule runs as written or not at all.
//!
//! The predicate calls three functions the query engine provides: `json_path_match(json, path,
//! regex)` (true when a value at the dotted path of a JSON column matches; arrays on the path
//! are searched element by element; keys match in any case), `json_path_text(json, path)` (the
//! first such value as text) and `cidr_match(address, network)`.

pub mod condition;
pub mod field;
pub mod pattern;
mod predicate;
pub mod rule;

pub use rule::RuleInfo;

/// Why a rule does not compile. Messages name the part of the rule at fault; callers add the
/// file.
#[derive(Debug, thiserror::Error)]
pub enum SigmaError {
    /// Not YAML, or not shaped like a Sigma rule.
    #[error("not a Sigma rule: {0}")]
    Invalid(String),
    /// A Sigma construct this compiler does not run (it would not give the rule's meaning).
    #[error("not supported: {0}")]
    Unsupported(String),
}

/// A compiled rule.
#[derive(Debug, Clone)]
pub struct Compiled {
    pub info: RuleInfo,
    /// A boolean SQL expression over the columns of `cloudtrail`, never NULL.
    pub predicate: String,
    /// What the user should know although the rule compiled (a field CloudTrail never writes).
    pub warnings: Vec<String>,
}

/// Compiles a rule's YAML text.
pub fn compile(text: &str) -> Result<Compiled, SigmaError> {
    let rule = rule::Rule::parse(text)?;
    let mut warnings = Vec::new();
    let predicate = predicate::compile(&rule, &mut warnings)?;
    Ok(Compiled {
        info: rule.info,
        predicate,
        warnings,
    })
}

/// The title of a rule file, when it can be read (to name a rule that does not compile).
pub fn title(text: &str) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Title {
        title: String,
    }
    serde_norway::from_str::<Title>(text).ok().map(|t| t.title)
}

/// A string as a SQL literal: single quotes doubled, nothing else changed (DataFusion reads
/// backslashes in a plain literal as themselves).
pub fn sql_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}
