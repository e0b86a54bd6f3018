//! SQL functions over a dotted path into a JSON column, as compiled Sigma rules read
//! `requestParameters.containerDefinitions.command` or `additionalEventData.MFAUsed`.
//!
//! The values at a path are found the way a reader of the record would: keys match in any case
//! (producers differ), an array met on the way is searched element by element (the path goes on
//! in each), an array at the end gives each of its elements, a string gives its text, a number
//! or boolean its JSON text (`true`, `12`), an object its JSON text, and JSON `null` nothing.
//!
//! - `json_path_match(json, path, regex)`: whether any value at the path matches the regular
//!   expression (unanchored; the caller anchors). Never NULL: a missing column, key or value is
//!   `false`, so `NOT` of it is true, as Sigma wants of a field that is absent.
//! - `json_path_text(json, path)`: the first value at the path, or NULL.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, StringArray};
use arrow::compute::cast;
use arrow::datatypes::DataType;
use datafusion::common::{Result, exec_err};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use serde_json::Value;

use crate::udf::scalar_if_all_scalar;

/// Calls `each` with the text of every value at `path` in `v` until it returns true; whether one
/// did.
fn any_value(v: &Value, path: &[&str], each: &mut dyn FnMut(&str) -> bool) -> bool {
    match (v, path.split_first()) {
        (Value::Array(items), _) => items.iter().any(|i| any_value(i, path, each)),
        (Value::Object(map), Some((key, rest))) => map
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(key))
            .any(|(_, child)| any_value(child, rest, each)),
        (_, Some(_)) | (Value::Null, None) => false,
        (Value::String(s), None) => each(s),
        (other, None) => each(&other.to_string()),
    }
}

fn strings(arg: &ColumnarValue, rows: usize) -> Result<ArrayRef> {
    Ok(cast(&arg.to_array(rows)?, &DataType::Utf8)?)
}

/// Each row's JSON, parsed, and its path split into keys; `None` where either is NULL or the
/// text is not JSON.
fn rows_of<'a>(
    json: &'a StringArray,
    path: &'a StringArray,
) -> impl Iterator<Item = Option<(Value, Vec<&'a str>)>> + 'a {
    (0..json.len()).map(move |i| {
        if json.is_null(i) || path.is_null(i) {
            return None;
        }
        let v: Value = serde_json::from_str(json.value(i)).ok()?;
        Some((v, path.value(i).split('.').collect()))
    })
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct JsonPathMatch {
    signature: Signature,
}

impl ScalarUDFImpl for JsonPathMatch {
    fn name(&self) -> &str {
        "json_path_match"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::Boolean)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        let [json, path, re] = args.args.as_slice() else {
            return exec_err!("json_path_match takes (json, path, regex)");
        };
        let (json, path, re) = (
            strings(json, rows)?,
            strings(path, rows)?,
            strings(re, rows)?,
        );
        let (json, path, re) = (
            json.as_string::<i32>(),
            path.as_string::<i32>(),
            re.as_string::<i32>(),
        );
        let mut compiled: Option<(String, regex::Regex)> = None;
        let mut out = Vec::with_capacity(rows);
        for (i, row) in rows_of(json, path).enumerate() {
            let Some((value, steps)) = row else {
                out.push(false);
                continue;
            };
            if re.is_null(i) {
                out.push(false);
                continue;
            }
            let pattern = re.value(i);
            if compiled.as_ref().is_none_or(|(p, _)| p != pattern) {
                let r = regex::Regex::new(pattern).map_err(|e| {
                    datafusion::error::DataFusionError::Execution(format!(
                        "json_path_match: regular expression `{pattern}`: {e}"
                    ))
                })?;
                compiled = Some((pattern.to_string(), r));
            }
            let Some((_, r)) = compiled.as_ref() else {
                out.push(false);
                continue;
            };
            out.push(any_value(&value, &steps, &mut |t| r.is_match(t)));
        }
        let out: ArrayRef = Arc::new(BooleanArray::from(out));
        scalar_if_all_scalar(&args.args, out)
    }
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct JsonPathText {
    signature: Signature,
}

impl ScalarUDFImpl for JsonPathText {
    fn name(&self) -> &str {
        "json_path_text"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        let [json, path] = args.args.as_slice() else {
            return exec_err!("json_path_text takes (json, path)");
        };
        let (json, path) = (strings(json, rows)?, strings(path, rows)?);
        let out: StringArray = rows_of(json.as_string::<i32>(), path.as_string::<i32>())
            .map(|row| {
                let (value, steps) = row?;
                let mut first = None;
                any_value(&value, &steps, &mut |t| {
                    first = Some(t.to_string());
                    true
                });
                first
            })
            .collect();
        scalar_if_all_scalar(&args.args, Arc::new(out))
    }
}

/// The `json_path_match` function, for registration.
pub fn json_path_match() -> ScalarUDF {
    ScalarUDF::new_from_impl(JsonPathMatch {
        signature: Signature::string(3, Volatility::Immutable),
    })
}

/// The `json_path_text` function, for registration.
pub fn json_path_text() -> ScalarUDF {
    ScalarUDF::new_from_impl(JsonPathText {
        signature: Signature::string(2, Volatility::Immutable),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(json: &str, path: &str) -> Vec<String> {
        let v: Value = serde_json::from_str(json).expect("json");
        let steps: Vec<&str> = path.split('.').collect();
        let mut out = Vec::new();
        any_value(&v, &steps, &mut |t| {
            out.push(t.to_string());
            false
        });
        out
    }

    #[test]
    fn values_at_a_path_are_found_as_a_reader_would() {
        let ecs =
            r#"{"containerDefinitions":[{"command":["sh","-c","curl $AWS_X"]},{"name":"b"}]}"#;
        assert_eq!(
            values(ecs, "containerDefinitions.command"),
            ["sh", "-c", "curl $AWS_X"]
        );
        assert_eq!(values(r#"{"MFAUsed":"No"}"#, "mfaused"), ["No"]);
        assert_eq!(values(r#"{"enable":false,"n":12}"#, "enable"), ["false"]);
        assert_eq!(values(r#"{"n":12}"#, "n"), ["12"]);
        assert_eq!(values(r#"{"p":{"a":1}}"#, "p"), [r#"{"a":1}"#]);
        assert!(values(r#"{"p":null}"#, "p").is_empty());
        assert!(values(r#"{"p":"x"}"#, "p.q").is_empty());
        assert!(values(r#"{"p":"x"}"#, "q").is_empty());
        // Keys that differ only by case are each searched.
        assert_eq!(values(r#"{"Key":"a","key":"b"}"#, "KEY"), ["a", "b"]);
    }
}
