//! The derived columns added after lakes were first made ([`schema::ADDED_COLUMNS`]), computed
//! from a record's columns: one place for ingest, which writes them, and for compaction, which
//! fills them in for a file an earlier trailhouse wrote without them.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, new_null_array};
use arrow::datatypes::DataType;

use crate::schema;

/// Added column `name` for `rows` rows whose columns `column` finds by name: the ARNs of
/// `resources` ([`schema::RESOURCEARNS`]) or the actor of `useridentity` ([`schema::ACTOR`]),
/// null where the column they come from is missing. `Err` names the column that is not what
/// the derivation reads, or a name that is not an added column.
pub fn added_column<'a>(
    name: &str,
    column: impl Fn(&str) -> Option<&'a ArrayRef>,
    rows: usize,
) -> Result<ArrayRef, String> {
    let from = match name {
        schema::RESOURCEARNS => "resources",
        schema::ACTOR => "useridentity",
        other => return Err(format!("`{other}` is not a derived column added since")),
    };
    let Some(source) = column(from) else {
        return Ok(new_null_array(&DataType::Utf8, rows));
    };
    let derived = match name {
        schema::RESOURCEARNS => crate::arns::resource_arns(source.as_ref()),
        _ => match source.as_struct_opt() {
            Some(identity) => crate::actor::actor_of_identity(identity),
            None => Err(format!("expects a struct, got {}", source.data_type())),
        },
    };
    derived
        .map(|array| Arc::new(array) as ArrayRef)
        .map_err(|what| format!("column {from}: {what}"))
}
