//! Who acted, as one text: the identity's ARN, else the AWS service that made the call
//! (`invokedBy`), else its principal id, else its type. What column
//! [`ACTOR`](crate::schema::ACTOR) holds and SQL's `actor(useridentity)` returns: one
//! definition, so that a row's stored text and the function's answer over its identity are the
//! same text.

use arrow::array::{
    Array, ArrayRef, AsArray, GenericStringArray, OffsetSizeTrait, StringArray, StringBuilder,
    StringViewArray, StructArray,
};
use arrow::buffer::NullBuffer;
use arrow::datatypes::DataType;

/// The members of `userIdentity` that name the actor, most telling first.
pub const ACTOR_MEMBERS: [&str; 4] = ["arn", "invokedby", "principalid", "type"];

/// Each row's actor from its `useridentity`: [`first_present`] of the members, and none where
/// there is no identity. `Err` names what `identity` holds instead of text members.
pub fn actor_of_identity(identity: &StructArray) -> Result<StringArray, String> {
    let members: Vec<ArrayRef> = ACTOR_MEMBERS
        .iter()
        .filter_map(|m| identity.column_by_name(m))
        .cloned()
        .collect();
    let (offsets, values, nulls) = first_present(&members, identity.len())?.into_parts();
    let nulls = NullBuffer::union(nulls.as_ref(), identity.nulls());
    StringArray::try_new(offsets, values, nulls).map_err(|e| e.to_string())
}

/// One column of text in whichever layout it came.
enum Text<'a> {
    Plain(&'a StringArray),
    Large(&'a GenericStringArray<i64>),
    View(&'a StringViewArray),
    Null,
}

impl<'a> Text<'a> {
    fn of(array: &'a ArrayRef) -> Result<Self, String> {
        Ok(match array.data_type() {
            DataType::Utf8 => Text::Plain(array.as_string::<i32>()),
            DataType::LargeUtf8 => Text::Large(array.as_string::<i64>()),
            DataType::Utf8View => Text::View(array.as_string_view()),
            DataType::Null => Text::Null,
            other => return Err(format!("takes text, got {other}")),
        })
    }

    /// Row `i`'s text, `None` when it is null.
    fn get(&self, i: usize) -> Option<&'a str> {
        fn offsets<O: OffsetSizeTrait>(a: &GenericStringArray<O>, i: usize) -> Option<&str> {
            a.is_valid(i).then(|| a.value(i))
        }
        match self {
            Text::Plain(a) => offsets(a, i),
            Text::Large(a) => offsets(a, i),
            Text::View(a) => a.is_valid(i).then(|| a.value(i)),
            Text::Null => None,
        }
    }
}

/// Each of `rows` rows' first member that is not null (null when none is).
pub fn first_present(members: &[ArrayRef], rows: usize) -> Result<StringArray, String> {
    // The usual batch: every row has the first member, and in plain text it is the answer.
    if let Some(first) = members.first()
        && first.data_type() == &DataType::Utf8
        && first.null_count() == 0
    {
        return Ok(first.as_string::<i32>().clone());
    }
    let members = members
        .iter()
        .map(Text::of)
        .collect::<Result<Vec<_>, _>>()?;
    // Each row's pick, found once, then written into a result sized for them.
    let picked: Vec<Option<&str>> = (0..rows)
        .map(|i| members.iter().find_map(|m| m.get(i)))
        .collect();
    let bytes = picked.iter().flatten().map(|v| v.len()).sum();
    let mut out = StringBuilder::with_capacity(rows, bytes);
    for value in picked {
        out.append_option(value);
    }
    Ok(out.finish())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn actor_of_picks_each_rows_first_member_in_any_text_layout() {
        use arrow::array::{LargeStringArray, NullArray};
        let rows = 4;
        let arn: ArrayRef = Arc::new(StringArray::from(vec![
            Some("arn:aws:iam::111122223333:user/alice"),
            None,
            None,
            None,
        ]));
        let invoked_by: ArrayRef = Arc::new(StringViewArray::from(vec![
            None,
            Some("a-service-name-longer-than-twelve.amazonaws.com"),
            None,
            None,
        ]));
        let principal_id: ArrayRef =
            Arc::new(LargeStringArray::from(vec![None, None, Some("AIDA"), None]));
        let kind: ArrayRef = Arc::new(NullArray::new(rows));
        let out = first_present(&[arn, invoked_by, principal_id, kind], rows).expect("actor");
        let got: Vec<Option<&str>> = out.iter().collect();
        assert_eq!(
            got,
            [
                Some("arn:aws:iam::111122223333:user/alice"),
                Some("a-service-name-longer-than-twelve.amazonaws.com"),
                Some("AIDA"),
                None,
            ]
        );
        // A batch whose first member is never null is that member, whatever follows it.
        let arns = StringArray::from(vec!["arn:a", "arn:b"]).slice(1, 1);
        let other: ArrayRef = Arc::new(StringArray::from(vec!["x"]));
        let out = first_present(&[Arc::new(arns.clone()), other], 1).expect("actor");
        assert_eq!(out, arns);
        // Not text: refused.
        let number: ArrayRef = Arc::new(arrow::array::Int64Array::from(vec![1]));
        assert!(first_present(&[number], 1).is_err());
    }

    #[test]
    fn actor_of_an_identity_is_its_first_member_and_none_without_an_identity() {
        use arrow::datatypes::Field;
        let text = |v: Vec<Option<&str>>| Arc::new(StringArray::from(v)) as ArrayRef;
        let identity = StructArray::new(
            vec![
                Field::new("type", DataType::Utf8, true),
                Field::new("arn", DataType::Utf8, true),
            ]
            .into(),
            vec![
                text(vec![Some("AWSAccount"), Some("IAMUser"), Some("IAMUser")]),
                text(vec![
                    None,
                    Some("arn:aws:iam::1:user/a"),
                    Some("left under no identity"),
                ]),
            ],
            Some(vec![true, true, false].into()),
        );
        let out = actor_of_identity(&identity).expect("actor");
        let got: Vec<Option<&str>> = out.iter().collect();
        assert_eq!(
            got,
            [Some("AWSAccount"), Some("arn:aws:iam::1:user/a"), None]
        );
    }
}
