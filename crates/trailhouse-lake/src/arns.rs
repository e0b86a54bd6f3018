//! The ARNs of a record's `resources` list as one text: what column
//! [`RESOURCEARNS`](crate::schema::RESOURCEARNS) holds and SQL's `resource_arns(resources)`
//! returns. One definition, so that a row's stored text and the function's answer over its list
//! are the same text.

use std::fmt::Write as _;

use arrow::array::{Array, AsArray, ListArray, StringArray, StringArrayType, StringBuilder};
use arrow::datatypes::DataType;

/// One text per row: the `arn` members of the list's structs joined by new lines (an ARN holds
/// none), in the list's order; empty when the list holds no ARN, null when the list is null.
/// `Err` names what `resources` is instead of a list of structs with text ARNs.
pub fn resource_arns(resources: &dyn Array) -> Result<StringArray, String> {
    let DataType::List(_) = resources.data_type() else {
        return Err(format!(
            "expects the resources column (a list of structs), got {}",
            resources.data_type()
        ));
    };
    let list = resources.as_list::<i32>();
    let Some(structs) = list.values().as_struct_opt() else {
        return Err("expects a list of structs".to_string());
    };
    let Some(arn) = structs.column_by_name("arn") else {
        return Err("expects structs with an `arn` member".to_string());
    };
    // Read in whichever string layout the reader gives: a cast to plain text would copy every
    // ARN of a batch given as views.
    Ok(match arn.data_type() {
        DataType::Utf8View => join_arns(list, arn.as_string_view()),
        DataType::Utf8 => join_arns(list, arn.as_string::<i32>()),
        DataType::LargeUtf8 => join_arns(list, arn.as_string::<i64>()),
        other => return Err(format!("expects text ARNs, got {other}")),
    })
}

/// [`resource_arns`] over ARNs of any string layout, each row written straight into the result.
fn join_arns<'a>(list: &ListArray, arn: impl StringArrayType<'a>) -> StringArray {
    let offsets = list.value_offsets();
    let bytes = arn_bytes(list, &arn);
    let mut out = StringBuilder::with_capacity(list.len(), bytes);
    for i in 0..list.len() {
        if list.is_null(i) {
            out.append_null();
            continue;
        }
        let mut first = true;
        for j in offsets[i] as usize..offsets[i + 1] as usize {
            if arn.is_valid(j) {
                if !first {
                    out.write_str("\n").ok();
                }
                out.write_str(arn.value(j)).ok();
                first = false;
            }
        }
        out.append_value("");
    }
    out.finish()
}

/// Bytes of the ARNs the rows of `list` hold (and their separators), to size the result.
fn arn_bytes<'a>(list: &ListArray, arn: &impl StringArrayType<'a>) -> usize {
    let offsets = list.value_offsets();
    let (start, end) = (offsets[0] as usize, offsets[list.len()] as usize);
    (start..end)
        .filter(|&j| arn.is_valid(j))
        .map(|j| arn.value(j).len() + 1)
        .sum()
}
