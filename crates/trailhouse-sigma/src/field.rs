//! Where a Sigma field name lands on table `cloudtrail`.
//!
//! The name is split on dots and walked through the schema's [`RECORD_FIELDS`], each step in any
//! case:
//!
//! - a string member, at the top or inside `userIdentity`/`tlsDetails`, is its column or struct
//!   member (`userIdentity.sessionContext.sessionIssuer.type`); a boolean (`readOnly`) is read as
//!   the text `true`/`false`, as Sigma compares values as strings;
//! - a JSON-valued field (`requestParameters`, `responseElements`, `additionalEventData`, …) is
//!   its JSON text as a whole, or a path into it (`requestParameters.bucketName`);
//! - a key CloudTrail's schema does not have (at the top, or inside a known object) is looked
//!   for where ingest keeps such keys verbatim: column `extra` (a warning says so: CloudTrail
//!   itself never writes it).

use trailhouse_lake::schema::{self, FieldSpec, Kind, RECORD_FIELDS};

use crate::{SigmaError, sql_literal};

/// A field's value as the compiled SQL reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Field {
    /// A text-valued SQL expression (a column or struct member), NULL when absent.
    Text(String),
    /// A dotted path into the JSON text of `column`.
    Json { column: String, path: String },
}

impl Field {
    /// Resolves `name` (as written in the rule), with a warning for a key CloudTrail never
    /// writes.
    pub fn resolve(name: &str, warnings: &mut Vec<String>) -> Result<Self, SigmaError> {
        let parts: Vec<&str> = name.split('.').collect();
        if parts.iter().any(|p| p.is_empty()) {
            return Err(SigmaError::Invalid(format!(
                "field `{name}` has an empty part"
            )));
        }
        let mut specs: &[FieldSpec] = RECORD_FIELDS;
        let mut sql = String::new();
        let mut known: Vec<&str> = Vec::new();
        for (i, part) in parts.iter().enumerate() {
            let Some(spec) = specs.iter().find(|s| s.key.eq_ignore_ascii_case(part)) else {
                warnings.push(format!(
                    "field `{name}` is not in CloudTrail's record schema: it matches only \
                     records that carry it as an extra key"
                ));
                // The known part of the path in the schema's spelling, the rest as written.
                let path: Vec<&str> = known
                    .iter()
                    .copied()
                    .chain(parts[i..].iter().copied())
                    .collect();
                return Ok(Field::Json {
                    column: schema::EXTRA.to_string(),
                    path: path.join("."),
                });
            };
            known.push(spec.key);
            let column = schema::column_name(spec.key);
            if i == 0 {
                sql = column;
            } else {
                sql = format!("{sql}[{}]", sql_literal(&column));
            }
            let last = i + 1 == parts.len();
            match spec.kind {
                Kind::Str if last => return Ok(Field::Text(sql)),
                Kind::Bool if last => return Ok(Field::Text(format!("CAST({sql} AS VARCHAR)"))),
                Kind::Json => {
                    if i > 0 {
                        return Err(SigmaError::Unsupported(format!(
                            "field `{name}`: JSON inside a struct member"
                        )));
                    }
                    return Ok(if last {
                        Field::Text(sql)
                    } else {
                        Field::Json {
                            column: sql,
                            path: parts[i + 1..].join("."),
                        }
                    });
                }
                Kind::Struct(children) if !last => specs = children,
                Kind::Struct(_) => {
                    return Err(SigmaError::Unsupported(format!(
                        "field `{name}` is an object: name one of its members"
                    )));
                }
                Kind::Timestamp => {
                    return Err(SigmaError::Unsupported(format!(
                        "field `{name}`: times are chosen with --since and --until"
                    )));
                }
                Kind::List(_) => {
                    return Err(SigmaError::Unsupported(format!(
                        "field `{name}`: members of the `resources` list"
                    )));
                }
                Kind::Str | Kind::Bool => {
                    return Err(SigmaError::Unsupported(format!(
                        "field `{name}`: `{part}` is a text value, it has no members"
                    )));
                }
            }
        }
        Err(SigmaError::Invalid(format!("field `{name}` is empty")))
    }

    /// The value as a text SQL expression: a JSON path gives its first value.
    pub fn text_sql(&self) -> String {
        match self {
            Field::Text(sql) => sql.clone(),
            Field::Json { column, path } => {
                format!("json_path_text({column}, {})", sql_literal(path))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(name: &str) -> (Result<Field, SigmaError>, Vec<String>) {
        let mut w = Vec::new();
        (Field::resolve(name, &mut w), w)
    }

    #[test]
    fn fields_land_on_columns_members_and_json_paths_in_any_case() {
        let text = |s: &str| Field::Text(s.to_string());
        for (name, want) in [
            ("eventName", text("eventname")),
            ("EVENTSOURCE", text("eventsource")),
            ("userIdentity.type", text("useridentity['type']")),
            (
                "userIdentity.sessionContext.sessionIssuer.type",
                text("useridentity['sessioncontext']['sessionissuer']['type']"),
            ),
            ("readOnly", text("CAST(readonly AS VARCHAR)")),
            ("requestParameters", text("requestparameters")),
            (
                "additionalEventData.MFAUsed",
                Field::Json {
                    column: "additionaleventdata".into(),
                    path: "MFAUsed".into(),
                },
            ),
            (
                "requestParameters.containerDefinitions.command",
                Field::Json {
                    column: "requestparameters".into(),
                    path: "containerDefinitions.command".into(),
                },
            ),
        ] {
            let (got, warnings) = resolve(name);
            assert_eq!(got.expect(name), want, "{name}");
            assert!(warnings.is_empty(), "{name}: {warnings:?}");
        }
    }

    #[test]
    fn keys_outside_the_schema_are_looked_for_in_extra_with_a_warning() {
        let (got, warnings) = resolve("status");
        assert_eq!(
            got.expect("resolves"),
            Field::Json {
                column: "extra".into(),
                path: "status".into()
            }
        );
        assert!(warnings[0].contains("`status` is not in CloudTrail"));
        let (got, _) = resolve("useridentity.somethingNew");
        assert_eq!(
            got.expect("resolves"),
            Field::Json {
                column: "extra".into(),
                path: "userIdentity.somethingNew".into()
            }
        );
    }

    #[test]
    fn fields_that_are_not_values_are_refused() {
        for (name, says) in [
            ("userIdentity", "is an object"),
            ("eventTime", "--since"),
            ("resources.ARN", "resources"),
            ("eventName.x", "has no members"),
            ("a..b", "empty part"),
        ] {
            let e = resolve(name).0.expect_err(name).to_string();
            assert!(e.contains(says), "{name}: {e}");
        }
    }
}
