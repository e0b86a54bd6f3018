//! Arrow builders of the typed columns: one per [`Kind`], nested for structs and lists, each
//! appending a member's JSON text and saying whether the typed value alone reproduces it.

use std::borrow::Cow;
use std::sync::Arc;

use arrow::array::builder::{ArrayBuilder, NullBufferBuilder};
use arrow::array::{
    ArrayRef, BooleanBuilder, ListArray, StringBuilder, StructArray, TimestampMicrosecondBuilder,
};
use arrow::buffer::OffsetBuffer;
use arrow::datatypes::{DataType, Field};
use trailhouse_lake::entries::Entries;
use trailhouse_lake::schema::{self, FieldSpec, Kind};

use serde_json::value::RawValue;

use super::scan;
use super::time::{is_canonical_time, parse_event_time};
use super::{Slot, child_field, json_str};

/// A column under construction. `append` returns whether the typed value alone reproduces the
/// JSON exactly; when it does not, the caller keeps the original in `extra`.
pub(super) enum Col {
    Str(StringBuilder),
    Bool(BooleanBuilder),
    Time(TimestampMicrosecondBuilder),
    Json(StringBuilder),
    Struct {
        fields: &'static [FieldSpec],
        children: Vec<Col>,
        valid: NullBufferBuilder,
        len: usize,
    },
    List {
        fields: &'static [FieldSpec],
        item: Box<Col>,
        offsets: Vec<i32>,
        valid: NullBufferBuilder,
    },
}

impl Col {
    /// A column of `kind`, its nodes (this one, then its children depth-first) reserving the
    /// (items, string bytes) `hints` gives, as [`Col::sizes`] lists them.
    pub(super) fn new(kind: Kind, hints: &mut impl Iterator<Item = (usize, usize)>) -> Col {
        let (items, bytes) = hints.next().unwrap_or_default();
        match kind {
            Kind::Str => Col::Str(StringBuilder::with_capacity(items, bytes)),
            Kind::Json => Col::Json(StringBuilder::with_capacity(items, bytes)),
            Kind::Bool => Col::Bool(BooleanBuilder::with_capacity(items)),
            Kind::Timestamp => {
                Col::Time(TimestampMicrosecondBuilder::with_capacity(items).with_timezone("UTC"))
            }
            Kind::Struct(fields) => Col::Struct {
                fields,
                children: fields.iter().map(|f| Col::new(f.kind, hints)).collect(),
                valid: NullBufferBuilder::new(items),
                len: 0,
            },
            Kind::List(fields) => {
                let mut offsets = Vec::with_capacity(items + 1);
                offsets.push(0);
                Col::List {
                    fields,
                    item: Box::new(Col::new(Kind::Struct(fields), hints)),
                    offsets,
                    valid: NullBufferBuilder::new(items),
                }
            }
        }
    }

    /// Appends (items, string bytes) of this node and its children, depth-first.
    pub(super) fn sizes(&self, out: &mut Vec<(usize, usize)>) {
        match self {
            Col::Str(b) | Col::Json(b) => out.push((b.len(), b.values_slice().len())),
            Col::Bool(b) => out.push((b.len(), 0)),
            Col::Time(b) => out.push((b.len(), 0)),
            Col::Struct { children, len, .. } => {
                out.push((*len, 0));
                children.iter().for_each(|c| c.sizes(out));
            }
            Col::List { item, offsets, .. } => {
                out.push((offsets.len() - 1, 0));
                item.sizes(out);
            }
        }
    }

    pub(super) fn append_null(&mut self) {
        match self {
            Col::Str(b) | Col::Json(b) => b.append_null(),
            Col::Bool(b) => b.append_null(),
            Col::Time(b) => b.append_null(),
            Col::Struct {
                children,
                valid,
                len,
                ..
            } => {
                children.iter_mut().for_each(Col::append_null);
                valid.append_null();
                *len += 1;
            }
            Col::List { offsets, valid, .. } => {
                let last = offsets.last().copied().unwrap_or(0);
                offsets.push(last);
                valid.append_null();
            }
        }
    }

    pub(super) fn append(&mut self, text: &str) -> bool {
        match self {
            Col::Json(b) => {
                b.append_value(text);
                true
            }
            Col::Str(b) => {
                if text.starts_with('"') {
                    match json_str(text) {
                        Some(s) => {
                            b.append_value(s);
                            true
                        }
                        None => {
                            b.append_null();
                            false
                        }
                    }
                } else if text.starts_with(['-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9'])
                    || text == "true"
                    || text == "false"
                {
                    b.append_value(text);
                    false
                } else {
                    b.append_null();
                    false
                }
            }
            Col::Bool(b) => {
                match text {
                    "true" => b.append_value(true),
                    "false" => b.append_value(false),
                    _ => {
                        let lenient =
                            serde_json::from_str::<Cow<'_, str>>(text)
                                .ok()
                                .and_then(|s| match s.to_ascii_lowercase().as_str() {
                                    "true" => Some(true),
                                    "false" => Some(false),
                                    _ => None,
                                });
                        b.append_option(lenient);
                        return false;
                    }
                }
                true
            }
            Col::Time(b) => {
                let parsed = json_str(text).and_then(|s| parse_event_time(&s).map(|t| (t, s)));
                match parsed {
                    Some((t, s)) => {
                        b.append_value(t);
                        is_canonical_time(&s, t)
                    }
                    None => {
                        b.append_null();
                        false
                    }
                }
            }
            Col::Struct {
                fields,
                children,
                valid,
                len,
            } => {
                let entries = match scan::members(text) {
                    Ok(members) => members,
                    Err(scan::GiveUp) => Entries::parse_str(text)
                        .map(|e| e.0.into_iter().map(|(k, v)| (k, v.get())).collect()),
                };
                let Some(entries) = entries else {
                    children.iter_mut().for_each(Col::append_null);
                    valid.append_null();
                    *len += 1;
                    return false;
                };
                let mut slots = [Slot::default(); 16];
                let mut faithful = fields.len() <= slots.len();
                for (i, (key, _)) in entries.iter().enumerate() {
                    match child_field(fields, key) {
                        Some((c, exact)) if c < slots.len() => slots[c].add(i, exact),
                        _ => faithful = false,
                    }
                }
                for (c, child) in children.iter_mut().enumerate() {
                    match slots.get(c).and_then(|s| s.best) {
                        Some(e) => {
                            let ok = child.append(entries[e].1);
                            faithful &= ok && slots[c].faithful();
                        }
                        None => child.append_null(),
                    }
                }
                valid.append_non_null();
                *len += 1;
                faithful
            }
            Col::List {
                item,
                offsets,
                valid,
                ..
            } => {
                let items = match scan::items(text) {
                    Ok(items) => items,
                    Err(scan::GiveUp) => serde_json::from_str::<Vec<&RawValue>>(text)
                        .ok()
                        .map(|items| items.into_iter().map(RawValue::get).collect()),
                };
                let Some(items) = items else {
                    let last = offsets.last().copied().unwrap_or(0);
                    offsets.push(last);
                    valid.append_null();
                    return false;
                };
                let mut faithful = true;
                for &it in &items {
                    if it == "null" {
                        item.append_null();
                    } else {
                        // A non-object item becomes a null struct and marks the list unfaithful.
                        faithful &= item.append(it);
                    }
                }
                let last = offsets.last().copied().unwrap_or(0);
                offsets.push(last + items.len() as i32);
                valid.append_non_null();
                faithful
            }
        }
    }

    pub(super) fn finish(&mut self) -> ArrayRef {
        match self {
            Col::Str(b) | Col::Json(b) => Arc::new(b.finish()),
            Col::Bool(b) => Arc::new(b.finish()),
            Col::Time(b) => Arc::new(b.finish()),
            Col::Struct {
                fields,
                children,
                valid,
                len,
            } => {
                let arrays: Vec<ArrayRef> = children.iter_mut().map(Col::finish).collect();
                let nulls = valid.finish();
                let n = std::mem::take(len);
                if arrays.is_empty() {
                    return Arc::new(StructArray::new_empty_fields(n, nulls));
                }
                Arc::new(StructArray::new(
                    schema::struct_fields(fields),
                    arrays,
                    nulls,
                ))
            }
            Col::List {
                fields,
                item,
                offsets,
                valid,
            } => {
                let values = item.finish();
                let offsets = OffsetBuffer::new(std::mem::replace(offsets, vec![0]).into());
                let field = Arc::new(Field::new(
                    "element",
                    DataType::Struct(schema::struct_fields(fields)),
                    true,
                ));
                Arc::new(ListArray::new(field, offsets, values, valid.finish()))
            }
        }
    }
}
