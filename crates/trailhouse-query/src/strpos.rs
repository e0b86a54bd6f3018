//! `strpos(text, fragment)` (and its other names, `instr` and `position`) as DataFusion defines
//! it, with one search over a whole batch when the text is plain strings and the fragment one
//! value for every row, as in `strpos(requestparameters, $resource) > 0`.
//!
//! DataFusion's own searches each row in turn: a start-up per row and a pass over every row's
//! bytes to learn whether the batch is ASCII. A plain string column keeps its rows end to end in
//! one buffer, so one search over that buffer finds the few rows a fragment occurs in; a match
//! that straddles two rows is skipped. `resource-history` at 20M events spent a sixth of its
//! time in the per-row search.
//!
//! Text read as views (the JSON columns, see `text_views`) is searched row by row where each
//! row's bytes are, with one searcher for the batch, and without the copy to plain strings a
//! cast would make first. Every other case (a fragment per row, a null fragment) is
//! DataFusion's own.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, GenericStringArray, Int32Array, OffsetSizeTrait, PrimitiveArray,
    StringViewArray,
};
use arrow::datatypes::{ArrowPrimitiveType, DataType, FieldRef, Int32Type, Int64Type};
use datafusion::common::Result;
use datafusion::functions::unicode::strpos::StrposFunc;
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl,
    Signature,
};
use memchr::memmem::Finder;

/// The function, to register in place of DataFusion's.
pub fn strpos() -> ScalarUDF {
    ScalarUDF::new_from_impl(Strpos {
        inner: StrposFunc::new(),
    })
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct Strpos {
    inner: StrposFunc,
}

impl ScalarUDFImpl for Strpos {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn aliases(&self) -> &[String] {
        self.inner.aliases()
    }
    fn signature(&self) -> &Signature {
        self.inner.signature()
    }
    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        self.inner.return_type(args)
    }
    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        self.inner.return_field_from_args(args)
    }
    fn documentation(&self) -> Option<&Documentation> {
        self.inner.documentation()
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        if let [ColumnarValue::Array(text), ColumnarValue::Scalar(fragment)] = args.args.as_slice()
            && let Some(Some(fragment)) = fragment.try_as_str()
        {
            let positions: Option<ArrayRef> = match text.data_type() {
                DataType::Utf8 => Some(Arc::new(positions::<i32, Int32Type>(
                    text.as_string::<i32>(),
                    fragment,
                ))),
                DataType::LargeUtf8 => Some(Arc::new(positions::<i64, Int64Type>(
                    text.as_string::<i64>(),
                    fragment,
                ))),
                DataType::Utf8View => {
                    Some(Arc::new(view_positions(text.as_string_view(), fragment)))
                }
                _ => None,
            };
            if let Some(positions) = positions {
                return Ok(ColumnarValue::Array(positions));
            }
        }
        self.inner.invoke_with_args(args)
    }
}

/// Each row's 1-based character position of `fragment`'s first occurrence, 0 where it does not
/// occur, NULL where the row is.
fn positions<O, T>(text: &GenericStringArray<O>, fragment: &str) -> PrimitiveArray<T>
where
    O: OffsetSizeTrait,
    T: ArrowPrimitiveType,
    T::Native: TryFrom<usize> + Default,
{
    let rows = text.len();
    let native = |n: usize| T::Native::try_from(n).unwrap_or_default();
    let mut out = vec![T::Native::default(); rows];
    let offsets = text.value_offsets();
    let bytes = text.value_data();
    let needle = fragment.as_bytes();
    if needle.is_empty() {
        out.fill(native(1));
        return PrimitiveArray::new(out.into(), text.nulls().cloned());
    }
    let finder = Finder::new(needle);
    let (Some(first), Some(end)) = (offsets.first(), offsets.last()) else {
        return PrimitiveArray::new(out.into(), text.nulls().cloned());
    };
    let (mut at, end) = (first.as_usize(), end.as_usize());
    // The row the search is in: `offsets[row] <= at`.
    let mut row = 0;
    while at < end
        && let Some(found) = finder.find(&bytes[at..end])
    {
        let p = at + found;
        // Past the rows that end at or before `p`: one step at a time, as a match is often in
        // the next row (a fragment most rows hold), and the whole batch is one pass anyway.
        while offsets[row + 1].as_usize() <= p {
            row += 1;
        }
        let (start, stop) = (offsets[row].as_usize(), offsets[row + 1].as_usize());
        at = stop;
        if p + needle.len() > stop {
            // Runs into the next row: not a match, and no later start in this row fits either.
            continue;
        }
        // Characters before the match: the bytes that do not continue a character.
        let chars = characters(&bytes[start..p]);
        out[row] = native(chars + 1);
        row += 1;
    }
    PrimitiveArray::new(out.into(), text.nulls().cloned())
}

/// As [`positions`], for text read as views: each row searched where its bytes are (in its
/// view or in the page it points into), with one searcher for the batch.
fn view_positions(text: &StringViewArray, fragment: &str) -> Int32Array {
    let needle = fragment.as_bytes();
    let finder = Finder::new(needle);
    let out: Vec<i32> = (0..text.len())
        .map(|row| {
            if text.is_null(row) {
                return 0;
            }
            let value = text.value(row).as_bytes();
            finder.find(value).map_or(0, |p| {
                let chars = characters(&value[..p]);
                i32::try_from(chars + 1).unwrap_or(i32::MAX)
            })
        })
        .collect();
    Int32Array::new(out.into(), text.nulls().cloned())
}

/// The characters in `bytes` (whole UTF-8): the bytes that do not continue a character.
fn characters(bytes: &[u8]) -> usize {
    if bytes.is_ascii() {
        bytes.len()
    } else {
        bytes.iter().filter(|&&b| (b as i8) >= -0x40).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int32Array, LargeStringArray, StringArray};
    use arrow::datatypes::Field;
    use datafusion::common::ScalarValue;

    fn invoke(f: &dyn ScalarUDFImpl, text: ArrayRef, fragment: ScalarValue) -> ArrayRef {
        let rows = text.len();
        let fields = vec![
            Arc::new(Field::new("t", text.data_type().clone(), true)),
            Arc::new(Field::new("f", fragment.data_type(), true)),
        ];
        let return_field = f
            .return_field_from_args(ReturnFieldArgs {
                arg_fields: &fields,
                scalar_arguments: &[None, Some(&fragment)],
            })
            .expect("return field");
        f.invoke_with_args(ScalarFunctionArgs {
            args: vec![ColumnarValue::Array(text), ColumnarValue::Scalar(fragment)],
            arg_fields: fields,
            number_rows: rows,
            return_field,
            config_options: Arc::default(),
        })
        .expect("invoke")
        .to_array(rows)
        .expect("array")
    }

    /// Ours and DataFusion's give the same positions.
    fn agree(text: ArrayRef, fragment: &str) -> ArrayRef {
        let fragment = ScalarValue::Utf8(Some(fragment.to_string()));
        let ours = invoke(
            &Strpos {
                inner: StrposFunc::new(),
            },
            Arc::clone(&text),
            fragment.clone(),
        );
        let theirs = invoke(&StrposFunc::new(), text, fragment.clone());
        assert_eq!(ours.as_ref(), theirs.as_ref(), "fragment {fragment}");
        ours
    }

    #[test]
    fn positions_count_characters_and_skip_matches_across_rows() {
        let rows = vec![
            Some("ab"),
            Some("cd"),
            None,
            Some(""),
            Some("xxabcd"),
            Some("été-abcd-abcd"),
            Some("abc"),
            Some("d"),
            Some("🙂abcd"),
        ];
        let text: ArrayRef = Arc::new(StringArray::from(rows.clone()));
        let found = agree(Arc::clone(&text), "abcd");
        // Not the "ab"+"cd" or "abc"+"d" that straddle rows; after a multi-byte prefix, the
        // position in characters.
        let expected = Int32Array::from(vec![
            Some(0),
            Some(0),
            None,
            Some(0),
            Some(3),
            Some(5),
            Some(0),
            Some(0),
            Some(2),
        ]);
        assert_eq!(found.as_primitive::<Int32Type>(), &expected);
        for fragment in ["", "a", "d", "cd", "é", "-", "zz", "abcdabcd", "🙂"] {
            agree(Arc::clone(&text), fragment);
        }
        // A slice of the batch (its offsets start past 0), and large strings.
        agree(text.slice(1, 6), "abcd");
        agree(text.slice(4, 0), "abcd");
        agree(Arc::new(LargeStringArray::from(rows.clone())), "abcd");
        // Views: short values in the view itself, long ones in a buffer.
        let views: ArrayRef = Arc::new(StringViewArray::from(rows));
        assert_eq!(agree(Arc::clone(&views), "abcd").as_ref(), found.as_ref());
        for fragment in ["", "a", "cd", "é", "zz", "🙂"] {
            agree(Arc::clone(&views), fragment);
        }
        let long: ArrayRef = Arc::new(StringViewArray::from(vec![
            Some(r#"{"bucketName":"customer-exports-prod","key":"é/2026/report.csv"}"#),
            None,
            Some(r#"{"bucketName":"logs"}"#),
            Some("exports"),
        ]));
        let found = agree(Arc::clone(&long), "exports");
        assert_eq!(
            found.as_primitive::<Int32Type>(),
            &Int32Array::from(vec![Some(25), None, Some(0), Some(1)])
        );
        agree(Arc::clone(&long), "report");
        agree(long.slice(1, 3), "exports");
    }

    #[test]
    fn a_match_running_into_the_next_row_does_not_hide_that_rows_own() {
        // "xabababababa": "aba" at 5 runs from "bab" into "ab", at 7 from "ab" into "aba".
        let text: ArrayRef = Arc::new(StringArray::from(vec!["xaba", "bab", "ab", "aba"]));
        let found = agree(text, "aba");
        assert_eq!(
            found.as_primitive::<Int32Type>(),
            &Int32Array::from(vec![2, 0, 0, 1])
        );
    }

    #[test]
    fn null_fragments_are_datafusions() {
        let text: ArrayRef = Arc::new(StringArray::from(vec!["a", "b"]));
        let ours = invoke(
            &Strpos {
                inner: StrposFunc::new(),
            },
            text,
            ScalarValue::Utf8(None),
        );
        assert_eq!(ours.null_count(), 2);
    }
}
