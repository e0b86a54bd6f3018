//! Rebuilds the original CloudTrail record from a stored row.
//!
//! The inverse of the ingest normalizer: typed columns are written back under CloudTrail's key,
//! then the members of `extra` verbatim. A typed field whose key (case-insensitively) also stands
//! in `extra` is not written from its column: `extra` holds its original form, and the column only
//! a best-effort typed reading of it.

use std::collections::HashSet;
use std::fmt::Write as _;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, ListArray, RecordBatch, StringArray, StructArray,
    TimestampMicrosecondArray,
};

use arrow::compute::cast;
use arrow::datatypes::DataType;

use crate::entries;
use crate::error::LakeError;
use crate::schema::{self, FieldSpec, Kind, RECORD_FIELDS};

/// Columns of one batch, resolved once so that rows rebuild without name look-ups.
pub struct Rebuilder {
    fields: Vec<(FieldSpec, ArrayRef)>,
    extra: Option<StringArray>,
}

impl Rebuilder {
    /// Resolves the record columns of `batch` (a projection of the table or file schema).
    /// Readers may hand back other physical types (DataFusion reads strings as `Utf8View`);
    /// columns are cast to the schema's types first.
    pub fn new(batch: &RecordBatch) -> Result<Self, LakeError> {
        let mut fields = Vec::with_capacity(RECORD_FIELDS.len());
        for spec in RECORD_FIELDS {
            let name = schema::column_name(spec.key);
            let column = batch
                .column_by_name(&name)
                .ok_or_else(|| LakeError::Schema(format!("column `{name}` is missing")))?;
            fields.push((*spec, conform(column, &schema::data_type(spec.kind))?));
        }
        let extra = match batch.column_by_name(schema::EXTRA) {
            Some(c) => Some(conform(c, &DataType::Utf8)?.as_string::<i32>().clone()),
            None => None,
        };
        Ok(Self { fields, extra })
    }

    /// Appends row `row` as one compact JSON object to `out`.
    pub fn write_row(&self, row: usize, out: &mut String) -> Result<(), LakeError> {
        let extra_text = self
            .extra
            .as_ref()
            .filter(|e| e.is_valid(row))
            .map(|e| e.value(row));
        let extra = match extra_text {
            Some(text) => entries::parse_owned(text).ok_or_else(|| {
                LakeError::Schema(format!("`extra` is not a JSON object: `{text}`"))
            })?,
            None => Vec::new(),
        };
        let shadowed: HashSet<String> = extra.iter().map(|(k, _)| k.to_lowercase()).collect();
        out.push('{');
        let mut first = true;
        for (spec, column) in &self.fields {
            if column.is_null(row) || shadowed.contains(&spec.key.to_lowercase()) {
                continue;
            }
            member_key(out, spec.key, &mut first);
            write_value(spec.kind, column.as_ref(), row, out)?;
        }
        for (key, value) in &extra {
            member_key(out, key, &mut first);
            push_on_one_line(out, value.get());
        }
        out.push('}');
        Ok(())
    }
}

/// Appends stored JSON text (kept exactly as it arrived, perhaps pretty-printed) on one line:
/// in JSON text a raw line break can only be white space (inside strings it is escaped), so
/// it becomes a space and the value stays the same.
pub fn push_on_one_line(out: &mut String, json: &str) {
    if json.contains(['\n', '\r']) {
        out.extend(
            json.chars()
                .map(|c| if matches!(c, '\n' | '\r') { ' ' } else { c }),
        );
    } else {
        out.push_str(json);
    }
}

fn conform(column: &ArrayRef, want: &DataType) -> Result<ArrayRef, LakeError> {
    if column.data_type() == want {
        return Ok(column.clone());
    }
    Ok(cast(column.as_ref(), want)?)
}

fn member_key(out: &mut String, key: &str, first: &mut bool) {
    if !*first {
        out.push(',');
    }
    *first = false;
    write_json_string(out, key);
    out.push(':');
}

fn write_json_string(out: &mut String, s: &str) {
    // serde_json escapes exactly as JSON requires; a String sink cannot fail.
    let _ = write!(out, "{}", serde_json::Value::from(s));
}

fn write_value(
    kind: Kind,
    column: &dyn Array,
    row: usize,
    out: &mut String,
) -> Result<(), LakeError> {
    match kind {
        Kind::Str => write_json_string(out, column.as_string::<i32>().value(row)),
        Kind::Json => push_on_one_line(out, column.as_string::<i32>().value(row)),
        Kind::Bool => {
            let b: &BooleanArray = column.as_boolean();
            out.push_str(if b.value(row) { "true" } else { "false" });
        }
        Kind::Timestamp => {
            let t: &TimestampMicrosecondArray = column.as_primitive();
            let text = schema::format_event_time(t.value(row)).ok_or_else(|| {
                LakeError::Schema(format!("timestamp out of range: `{}`", t.value(row)))
            })?;
            write_json_string(out, &text);
        }
        Kind::Struct(children) => write_struct(children, column.as_struct(), row, out)?,
        Kind::List(children) => {
            let list: &ListArray = column.as_list();
            let items = list.value(row);
            let items = items.as_struct();
            out.push('[');
            for i in 0..items.len() {
                if i > 0 {
                    out.push(',');
                }
                if items.is_null(i) {
                    out.push_str("null");
                } else {
                    write_struct(children, items, i, out)?;
                }
            }
            out.push(']');
        }
    }
    Ok(())
}

fn write_struct(
    children: &[FieldSpec],
    array: &StructArray,
    row: usize,
    out: &mut String,
) -> Result<(), LakeError> {
    out.push('{');
    let mut first = true;
    for (spec, column) in children.iter().zip(array.columns()) {
        if column.is_null(row) {
            continue;
        }
        member_key(out, spec.key, &mut first);
        write_value(spec.kind, column.as_ref(), row, out)?;
    }
    out.push('}');
    Ok(())
}
