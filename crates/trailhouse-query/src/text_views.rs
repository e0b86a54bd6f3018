//! Data files' text read as string views.
//!
//! Our data files hint their text columns as plain strings (`Utf8`), so that every reader of
//! the Delta table (pyarrow datasets among them) sees the types of the table's schema. Decoded
//! as plain strings, each value is copied out of its page or dictionary, including the values
//! a filter then drops. Decoded as views, a value points into the page or dictionary, and only
//! what the scan keeps is cast to the table's `Utf8`. A question that picks 500,000 of 20M rows
//! by source IP took 2.8 s as plain strings and 1.8 s as views (a third of its time was
//! `memmove` out of dictionaries).
//!
//! Columns our writer encodes with dictionaries are read so, and the JSON columns
//! ([`trailhouse_lake::datafile::JSON_COLUMNS`]), whose values a view points to in their page:
//! a search for a name in every request and response (`strpos`, `LIKE`) reads them without a
//! copy. The other columns without a dictionary (event and request ids, times) are read as
//! plain strings: they are mostly read to be kept, and a view then cast copies twice.
//!
//! DataFusion decodes a file's text as views only when the file's footer hints views (or the
//! table's schema has them, which would give every query view types). So the lake's scan opens
//! its files through [`TextAsViews`], which hands the reader a footer hinting views: the file
//! is not changed.
//!
//! A filter the scan applies to a file is written against the table's types: DataFusion adapts
//! it to the file by casting each view column back to `Utf8`, a copy of every value of the
//! column before the filter drops most of them (a tenth of `run errors`' time at 20M events).
//! Comparisons lose that cast in DataFusion's own simplifier; [`ViewPredicates`] takes it off
//! `LIKE` and null tests too, matching the views with the pattern as a view, and off the
//! `resources` list under `resource_arns`, which reads either (where the plan narrowed the list
//! to its ARNs, `resources_arns_only`, the scan reads it as a cast of the file's column to that
//! narrower list, and DataFusion's Parquet reader then decodes the ARNs and no other member; a
//! file that stores them, column `resourcearns`, is read for them instead: DataFusion 55's
//! Parquet row filter reads a list whole, cast or not, and a search of the ARNs beside the
//! JSON took a fifth of `resource-history`'s time at 20M events reading it),
//! off the identity's members under
//! `actor_of` (what `actor` is planned as in a lake made before column `actor` was stored: it
//! reads either and gives plain text), and off the
//! text `strpos` searches for a literal (`coalesce(requestparameters, '')` as planned
//! included). `IN` lists keep
//! it: DataFusion's set of thousands of keys (a report's lookup of the temporary keys it names)
//! measured slower on views (a 2M-event report 3.9 -> 4.8 s).
//!
//! Where the table stores each row's actor (column `actor`, which `actor(useridentity)` is
//! planned as), a file written before it did is read for the identity's members instead, and
//! gives the same text.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::{Arc, LazyLock, Mutex};

use arrow::datatypes::{DataType, Schema, SchemaRef};
use bytes::Bytes;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{Result, ScalarValue};
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::physical_plan::ParquetFileReaderFactory;
use datafusion::functions::core::get_field;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::ScalarFunctionExpr;
use datafusion::physical_expr::expressions::{
    CaseExpr, CastExpr, Column, IsNotNullExpr, IsNullExpr, LikeExpr, Literal,
};
use datafusion::physical_expr_adapter::{
    DefaultPhysicalExprAdapterFactory, PhysicalExprAdapter, PhysicalExprAdapterFactory,
};
use datafusion::physical_plan::metrics::ExecutionPlanMetricsSet;
use futures::FutureExt;
use futures::future::BoxFuture;
use parquet::arrow::arrow_reader::ArrowReaderOptions;
use parquet::arrow::async_reader::AsyncFileReader;
use parquet::arrow::{ARROW_SCHEMA_META_KEY, encode_arrow_schema, parquet_to_arrow_schema};
use parquet::file::metadata::{FileMetaData, KeyValue, ParquetMetaData, ParquetMetaDataBuilder};
use trailhouse_lake::actor::ACTOR_MEMBERS;
use trailhouse_lake::datafile::{JSON_COLUMNS, PLAIN_COLUMNS};
use trailhouse_lake::schema::{ACTOR, RESOURCEARNS, text_as_views, type_as_views};

/// Opens files through `inner`, their footers hinting text as views.
#[derive(Debug)]
pub struct TextAsViews {
    pub inner: Arc<dyn ParquetFileReaderFactory>,
}

impl ParquetFileReaderFactory for TextAsViews {
    fn create_reader(
        &self,
        partition_index: usize,
        partitioned_file: PartitionedFile,
        metadata_size_hint: Option<usize>,
        metrics: &ExecutionPlanMetricsSet,
    ) -> Result<Box<dyn AsyncFileReader + Send>> {
        let inner = self.inner.create_reader(
            partition_index,
            partitioned_file,
            metadata_size_hint,
            metrics,
        )?;
        Ok(Box::new(ViewReader { inner }))
    }
}

struct ViewReader {
    inner: Box<dyn AsyncFileReader + Send>,
}

impl AsyncFileReader for ViewReader {
    fn get_bytes(&mut self, range: Range<u64>) -> BoxFuture<'_, parquet::errors::Result<Bytes>> {
        self.inner.get_bytes(range)
    }

    fn get_byte_ranges(
        &mut self,
        ranges: Vec<Range<u64>>,
    ) -> BoxFuture<'_, parquet::errors::Result<Vec<Bytes>>> {
        self.inner.get_byte_ranges(ranges)
    }

    fn get_metadata<'a>(
        &'a mut self,
        options: Option<&'a ArrowReaderOptions>,
    ) -> BoxFuture<'a, parquet::errors::Result<Arc<ParquetMetaData>>> {
        async move {
            let metadata = self.inner.get_metadata(options).await?;
            hinted_as_views(metadata)
        }
        .boxed()
    }
}

/// The columns without a dictionary that are read as plain strings: every one but the JSON
/// (event and request ids; the times and hashes among them are not text).
static PLAIN_STRINGS: LazyLock<Vec<&str>> = LazyLock::new(|| {
    PLAIN_COLUMNS
        .into_iter()
        .filter(|c| !JSON_COLUMNS.contains(c))
        .collect()
});

/// The Arrow schema hint that names `file`'s dictionary text as views, encoded; `None` when its
/// own hint already does. Every data file of a lake has one of a few hints, so each is worked
/// out once per process (a file without a hint, from another writer, every time).
fn view_hint(file: &FileMetaData) -> parquet::errors::Result<Option<String>> {
    static HINTS: LazyLock<Mutex<HashMap<String, Option<String>>>> =
        LazyLock::new(Default::default);
    let own = file.key_value_metadata().and_then(|kv| {
        kv.iter()
            .find(|kv| kv.key == ARROW_SCHEMA_META_KEY)
            .and_then(|kv| kv.value.clone())
    });
    if let Some(own) = &own
        && let Some(hint) = HINTS.lock().ok().and_then(|h| h.get(own).cloned())
    {
        return Ok(hint);
    }
    let hinted = parquet_to_arrow_schema(file.schema_descr(), file.key_value_metadata())?;
    let views = text_as_views(&hinted, &PLAIN_STRINGS);
    let hint = (views != hinted).then(|| encode_arrow_schema(&views));
    if let (Some(own), Ok(mut hints)) = (own, HINTS.lock()) {
        hints.insert(own, hint.clone());
    }
    Ok(hint)
}

/// `metadata` with its Arrow schema hint naming the text of dictionary-encoded columns as
/// views (see [`text_as_views`]; unchanged when it already does).
pub fn hinted_as_views(
    metadata: Arc<ParquetMetaData>,
) -> parquet::errors::Result<Arc<ParquetMetaData>> {
    let file = metadata.file_metadata();
    let Some(views) = view_hint(file)? else {
        return Ok(metadata);
    };
    let mut key_values: Vec<KeyValue> = file
        .key_value_metadata()
        .map(|kv| {
            kv.iter()
                .filter(|kv| kv.key != ARROW_SCHEMA_META_KEY)
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    key_values.push(KeyValue::new(ARROW_SCHEMA_META_KEY.to_string(), views));
    let file = FileMetaData::new(
        file.version(),
        file.num_rows(),
        file.created_by().map(str::to_string),
        Some(key_values),
        file.schema_descr_ptr(),
        file.column_orders().cloned(),
    );
    let mut old = ParquetMetaDataBuilder::new_from_metadata(Arc::unwrap_or_clone(metadata));
    Ok(Arc::new(
        ParquetMetaDataBuilder::new(file)
            .set_row_groups(old.take_row_groups())
            .set_column_index(old.take_column_index())
            .set_offset_index(old.take_offset_index())
            .build(),
    ))
}

/// Adapts a scan's filters to a file as DataFusion does, then lets `LIKE` and null
/// tests read the file's view columns without casting them to `Utf8` first: the same answer,
/// without a copy of every value.
#[derive(Debug)]
pub struct ViewPredicates;

impl PhysicalExprAdapterFactory for ViewPredicates {
    fn create(
        &self,
        logical_file_schema: SchemaRef,
        physical_file_schema: SchemaRef,
    ) -> Result<Arc<dyn PhysicalExprAdapter>> {
        // The stored ARNs are read where the table has the column (a lake made before it was
        // added does not) and this file holds it.
        let stored_arns = logical_file_schema
            .index_of(RESOURCEARNS)
            .ok()
            .and_then(|_| physical_file_schema.index_of(RESOURCEARNS).ok())
            .map(|index| Column::new(RESOURCEARNS, index));
        // Where the table stores the actor, a file written before it did gives it from the
        // identity's members (left to DataFusion's adapter, it would read as null: no actor).
        let derived_actor = match (
            logical_file_schema.index_of(ACTOR),
            physical_file_schema.index_of(ACTOR),
        ) {
            (Ok(index), Err(_)) if logical_file_schema.index_of("useridentity").is_ok() => {
                Some((index, actor_of_identity_members(&logical_file_schema)?))
            }
            _ => None,
        };
        Ok(Arc::new(ViewPredicateAdapter {
            inner: DefaultPhysicalExprAdapterFactory
                .create(logical_file_schema, Arc::clone(&physical_file_schema))?,
            file_schema: physical_file_schema,
            stored_arns,
            derived_actor,
        }))
    }
}

#[derive(Debug)]
struct ViewPredicateAdapter {
    inner: Arc<dyn PhysicalExprAdapter>,
    file_schema: SchemaRef,
    /// The file's column of its rows' ARNs, when it has one.
    stored_arns: Option<Column>,
    /// Where the table has column `actor` and the file does not: the column's index in the
    /// table, and what it is for the file's rows (`actor_of` of the identity's members).
    derived_actor: Option<(usize, Arc<dyn PhysicalExpr>)>,
}

impl PhysicalExprAdapter for ViewPredicateAdapter {
    fn rewrite(&self, expr: Arc<dyn PhysicalExpr>) -> Result<Arc<dyn PhysicalExpr>> {
        let expr = match &self.derived_actor {
            Some((index, derived)) => {
                expr.transform_up(|e| match e.downcast_ref::<Column>() {
                    Some(c) if c.index() == *index && c.name() == ACTOR => {
                        Ok(Transformed::yes(Arc::clone(derived)))
                    }
                    _ => Ok(Transformed::no(e)),
                })?
                .data
            }
            None => expr,
        };
        self.inner
            .rewrite(expr)?
            .transform_up(|e| {
                if let Some(column) = &self.stored_arns
                    && let Some(stored) = stored_arns(&e, column, &self.file_schema)
                {
                    return Ok(Transformed::yes(stored));
                }
                uncast_views(e, &self.file_schema)
            })
            .map(|t| t.data)
    }
}

/// `resource_arns(…)` of the `resources` column, as the file's column `column` that holds it
/// (read as plain text, as the function gives it, or as views under a cast, which a `strpos`
/// or `LIKE` above then takes off): one flat text column read instead of the members of every
/// resource of every row. `None` for anything else.
fn stored_arns(
    expr: &Arc<dyn PhysicalExpr>,
    column: &Column,
    schema: &Schema,
) -> Option<Arc<dyn PhysicalExpr>> {
    let call = expr.downcast_ref::<ScalarFunctionExpr>()?;
    let [argument] = call.args() else {
        return None;
    };
    if call.name() != crate::udf::RESOURCE_ARNS || !reads_resources_column(argument) {
        return None;
    }
    let stored: Arc<dyn PhysicalExpr> = Arc::new(column.clone());
    Some(match schema.field(column.index()).data_type() {
        DataType::Utf8 => stored,
        _ => Arc::new(CastExpr::new(stored, DataType::Utf8, None)),
    })
}

/// `actor_of` of the `useridentity` column's four members (what `actor(useridentity)` is
/// planned as where the table does not store it), over `schema`.
fn actor_of_identity_members(schema: &SchemaRef) -> Result<Arc<dyn PhysicalExpr>> {
    let config = Arc::new(ConfigOptions::default());
    let identity: Arc<dyn PhysicalExpr> =
        Arc::new(Column::new_with_schema("useridentity", schema)?);
    let members = ACTOR_MEMBERS
        .iter()
        .map(|member| {
            let name: Arc<dyn PhysicalExpr> =
                Arc::new(Literal::new(ScalarValue::Utf8(Some(member.to_string()))));
            Ok(Arc::new(ScalarFunctionExpr::try_new(
                get_field(),
                vec![Arc::clone(&identity), name],
                schema,
                Arc::clone(&config),
            )?) as Arc<dyn PhysicalExpr>)
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Arc::new(ScalarFunctionExpr::try_new(
        Arc::new(crate::udf::actor_of()),
        members,
        schema,
        config,
    )?))
}

/// Whether `expr` is the file's `resources` column, narrowed or cast as this module and
/// DataFusion's adapter write it (and not some other list a query built).
fn reads_resources_column(expr: &Arc<dyn PhysicalExpr>) -> bool {
    let mut expr = expr;
    loop {
        if let Some(column) = expr.downcast_ref::<Column>() {
            return column.name() == "resources";
        }
        if let Some(cast) = expr.downcast_ref::<CastExpr>() {
            expr = cast.expr();
            continue;
        }
        if let Some(call) = expr.downcast_ref::<ScalarFunctionExpr>()
            && call.name() == crate::udf::ARNS_ONLY
            && let [list] = call.args()
        {
            expr = list;
            continue;
        }
        return false;
    }
}

/// `expr` without the casts of view text to `Utf8` under a `LIKE` with a literal pattern, a
/// null test, `resource_arns`, `actor_of` (what `actor` is planned as; it gives plain text
/// whatever it reads) or a `strpos` of a literal.
fn uncast_views(
    expr: Arc<dyn PhysicalExpr>,
    schema: &Schema,
) -> Result<Transformed<Arc<dyn PhysicalExpr>>> {
    if let Some(like) = expr.downcast_ref::<LikeExpr>()
        && let Some(view) = view_under_cast(like.expr(), schema)?
        && let Some(pattern) = as_view_literal(like.pattern())
    {
        return Ok(Transformed::yes(Arc::new(LikeExpr::new(
            like.negated(),
            like.case_insensitive(),
            view,
            pattern,
        ))));
    }
    if let Some(call) = expr.downcast_ref::<ScalarFunctionExpr>()
        && call.name() == crate::udf::RESOURCE_ARNS
        && let [resources] = call.args()
        && let Some(views) = views_under_cast(resources, schema)?
    {
        return Ok(Transformed::yes(
            Arc::clone(&expr).with_new_children(vec![views])?,
        ));
    }
    if let Some(call) = expr.downcast_ref::<ScalarFunctionExpr>()
        && call.name() == crate::udf::ARNS_ONLY
        && let [resources] = call.args()
    {
        let column = views_under_cast(resources, schema)?.unwrap_or_else(|| Arc::clone(resources));
        if column.downcast_ref::<Column>().is_some() {
            // A cast to a narrower list of structs: the scan reads the members it names only.
            return Ok(Transformed::yes(Arc::new(CastExpr::new(
                column,
                call.return_type().clone(),
                None,
            ))));
        }
    }
    if let Some(call) = expr.downcast_ref::<ScalarFunctionExpr>()
        && call.name() == "strpos"
        && let [text, fragment] = call.args()
        && fragment.downcast_ref::<Literal>().is_some()
        && let Some(views) = as_views(text, schema)?
    {
        return Ok(Transformed::yes(
            Arc::clone(&expr).with_new_children(vec![views, Arc::clone(fragment)])?,
        ));
    }
    if let Some(call) = expr.downcast_ref::<ScalarFunctionExpr>()
        && call.name() == crate::udf::ACTOR_OF
    {
        let mut uncast = false;
        let members = call
            .args()
            .iter()
            .map(|member| {
                Ok(match view_under_cast(member, schema)? {
                    Some(view) => {
                        uncast = true;
                        view
                    }
                    None => Arc::clone(member),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        if uncast {
            return Ok(Transformed::yes(
                Arc::clone(&expr).with_new_children(members)?,
            ));
        }
    }
    if let Some(test) = expr.downcast_ref::<IsNullExpr>()
        && let Some(view) = view_under_cast(test.arg(), schema)?
    {
        return Ok(Transformed::yes(Arc::new(IsNullExpr::new(view))));
    }
    if let Some(test) = expr.downcast_ref::<IsNotNullExpr>()
        && let Some(view) = view_under_cast(test.arg(), schema)?
    {
        return Ok(Transformed::yes(Arc::new(IsNotNullExpr::new(view))));
    }
    Ok(Transformed::no(expr))
}

/// The view-typed expression under `expr` when `expr` casts it to `Utf8`.
fn view_under_cast(
    expr: &Arc<dyn PhysicalExpr>,
    schema: &Schema,
) -> Result<Option<Arc<dyn PhysicalExpr>>> {
    let to_text = expr
        .downcast_ref::<CastExpr>()
        .is_some_and(|cast| cast.cast_type() == &DataType::Utf8);
    if !to_text {
        return Ok(None);
    }
    views_under_cast(expr, schema)
}

/// The expression under `expr` when `expr` casts it from its text as views to the same type
/// with plain text (a list of structs of text, as `resources`).
fn views_under_cast(
    expr: &Arc<dyn PhysicalExpr>,
    schema: &Schema,
) -> Result<Option<Arc<dyn PhysicalExpr>>> {
    let Some(cast) = expr.downcast_ref::<CastExpr>() else {
        return Ok(None);
    };
    let inner = cast.expr();
    Ok((inner.data_type(schema)? == type_as_views(cast.cast_type())).then(|| Arc::clone(inner)))
}

/// The same text as `expr` (of type `Utf8`) as views, when it is view text under a cast, or a
/// `CASE` choosing between such and literals with one of them view text
/// (`coalesce(requestparameters, '')` as planned).
fn as_views(
    expr: &Arc<dyn PhysicalExpr>,
    schema: &Schema,
) -> Result<Option<Arc<dyn PhysicalExpr>>> {
    if let Some(view) = view_under_cast(expr, schema)? {
        return Ok(Some(view));
    }
    let Some(case) = expr.downcast_ref::<CaseExpr>() else {
        return Ok(None);
    };
    if case.expr().is_some() {
        return Ok(None);
    }
    // Each branch as views: view text under a cast, or a literal.
    let branch = |e: &Arc<dyn PhysicalExpr>| -> Result<Option<(Arc<dyn PhysicalExpr>, bool)>> {
        Ok(match view_under_cast(e, schema)? {
            Some(view) => Some((view, true)),
            None => as_view_literal(e).map(|literal| (literal, false)),
        })
    };
    let mut any_view = false;
    let mut when_then = Vec::with_capacity(case.when_then_expr().len());
    for (when, then) in case.when_then_expr() {
        let Some((then, view)) = branch(then)? else {
            return Ok(None);
        };
        any_view |= view;
        when_then.push((Arc::clone(when), then));
    }
    let otherwise = match case.else_expr().map(&branch).transpose()? {
        Some(Some((e, view))) => {
            any_view |= view;
            Some(e)
        }
        Some(None) => return Ok(None),
        None => None,
    };
    if !any_view {
        return Ok(None);
    }
    Ok(Some(Arc::new(CaseExpr::try_new(
        None, when_then, otherwise,
    )?)))
}

/// A `Utf8` literal as the same text in a view literal.
fn as_view_literal(expr: &Arc<dyn PhysicalExpr>) -> Option<Arc<dyn PhysicalExpr>> {
    match expr.downcast_ref::<Literal>()?.value() {
        ScalarValue::Utf8(text) => {
            Some(Arc::new(Literal::new(ScalarValue::Utf8View(text.clone()))))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use arrow::array::{
        Array, ArrayRef, AsArray, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
    };
    use arrow::datatypes::DataType;
    use chrono::NaiveDate;
    use parquet::arrow::arrow_reader::{ArrowReaderMetadata, ParquetRecordBatchReaderBuilder};
    use parquet::file::metadata::ParquetMetaDataReader;
    use trailhouse_lake::Partition;
    use trailhouse_lake::datafile::write_data_file;
    use trailhouse_lake::schema;

    #[test]
    fn a_data_file_reads_its_dictionary_text_and_json_as_views_and_its_ids_as_strings() {
        let file_schema = schema::file_schema();
        let n = 3;
        let columns: Vec<ArrayRef> = file_schema
            .fields()
            .iter()
            .map(|f| match f.name().as_str() {
                schema::EVENTTIME => Arc::new(
                    TimestampMicrosecondArray::from_iter_values([1, 2, 3]).with_timezone("UTC"),
                ) as ArrayRef,
                schema::SOURCEFILE => Arc::new(StringArray::from(vec!["f"; n])),
                schema::REGION => Arc::new(StringArray::from(vec!["eu-west-1"; n])),
                schema::RECORDHASH => Arc::new(Int64Array::from_iter_values([1, 2, 3])),
                "eventname" => Arc::new(StringArray::from(vec![
                    "GetObject",
                    "PutObject",
                    "GetObject",
                ])),
                "requestparameters" => {
                    Arc::new(StringArray::from(vec![r#"{"bucketName":"b"}"#; n]))
                }
                _ => arrow::array::new_null_array(f.data_type(), n),
            })
            .collect();
        let batch = RecordBatch::try_new(file_schema, columns).expect("batch");
        let dir = tempfile::tempdir().expect("tempdir");
        let partition = Partition {
            day: NaiveDate::from_ymd_opt(1970, 1, 1).expect("day"),
        };
        let add = write_data_file(dir.path(), &partition, &batch).expect("write");
        let file = std::fs::File::open(dir.path().join(&add.path)).expect("open");
        let metadata = ParquetMetaDataReader::new()
            .parse_and_finish(&file)
            .expect("footer");

        let hinted = hinted_as_views(Arc::new(metadata)).expect("hinted");
        let reader_metadata =
            ArrowReaderMetadata::try_new(hinted, ArrowReaderOptions::new()).expect("metadata");
        let types = reader_metadata.schema();
        let type_of = |name: &str| types.field_with_name(name).expect(name).data_type().clone();
        assert_eq!(type_of("eventname"), DataType::Utf8View);
        assert_eq!(type_of("requestparameters"), DataType::Utf8View);
        assert_eq!(type_of(schema::EXTRA), DataType::Utf8View);
        assert_eq!(type_of("eventid"), DataType::Utf8);
        let DataType::Struct(identity) = type_of("useridentity") else {
            panic!("useridentity is a struct")
        };
        let arn = identity.iter().find(|f| f.name() == "arn").expect("arn");
        assert_eq!(arn.data_type(), &DataType::Utf8View);

        // The rows read back, the text of the dictionary columns as views.
        let rows: Vec<RecordBatch> =
            ParquetRecordBatchReaderBuilder::new_with_metadata(file, reader_metadata)
                .build()
                .expect("reader")
                .collect::<Result<_, _>>()
                .expect("rows");
        let names = rows[0].column_by_name("eventname").expect("eventname");
        let names = names.as_string_view();
        assert_eq!(
            (0..names.len()).map(|i| names.value(i)).collect::<Vec<_>>(),
            ["GetObject", "PutObject", "GetObject"]
        );
        let json = rows[0].column_by_name("requestparameters").expect("json");
        assert_eq!(json.as_string_view().value(0), r#"{"bucketName":"b"}"#);
    }
}

#[cfg(test)]
mod predicate_tests {
    use super::*;

    use arrow::array::{Array, AsArray, BooleanArray, RecordBatch, StringViewArray};
    use arrow::datatypes::Field;
    use datafusion::common::DFSchema;
    use datafusion::logical_expr::simplify::SimplifyContext;
    use datafusion::logical_expr::{col, lit};
    use datafusion::optimizer::simplify_expressions::ExprSimplifier;
    use datafusion::prelude::SessionContext;

    /// `planned` as DataFusion's adapter rewrites it for a file of `file`'s schema, and as ours does.
    fn adapted(
        table: &SchemaRef,
        file: &SchemaRef,
        planned: Arc<dyn PhysicalExpr>,
    ) -> (Arc<dyn PhysicalExpr>, Arc<dyn PhysicalExpr>) {
        let default = DefaultPhysicalExprAdapterFactory
            .create(Arc::clone(table), Arc::clone(file))
            .expect("adapter")
            .rewrite(Arc::clone(&planned))
            .expect("rewrite");
        let ours = ViewPredicates
            .create(Arc::clone(table), Arc::clone(file))
            .expect("adapter")
            .rewrite(planned)
            .expect("rewrite");
        (default, ours)
    }

    /// What the predicate `e` gives over `batch`.
    fn evaluated(e: &Arc<dyn PhysicalExpr>, batch: &RecordBatch) -> BooleanArray {
        let out = e.evaluate(batch).expect("evaluate");
        let out = out.into_array(batch.num_rows()).expect("array");
        out.as_any()
            .downcast_ref::<BooleanArray>()
            .expect("booleans")
            .clone()
    }

    /// Every node of `expr` that is a cast.
    fn casts(expr: &Arc<dyn PhysicalExpr>) -> usize {
        let mut n = 0;
        expr.apply(|e| {
            if e.downcast_ref::<CastExpr>().is_some() {
                n += 1;
            }
            Ok(datafusion::common::tree_node::TreeNodeRecursion::Continue)
        })
        .expect("walk");
        n
    }

    /// A table's text column `name` (`Utf8`), a file's (views), and a batch of the file's
    /// `values`.
    fn text_column(name: &str, values: Vec<Option<&str>>) -> (SchemaRef, SchemaRef, RecordBatch) {
        let table = Arc::new(Schema::new(vec![Field::new(name, DataType::Utf8, true)]));
        let file = Arc::new(Schema::new(vec![Field::new(
            name,
            DataType::Utf8View,
            true,
        )]));
        let values = StringViewArray::from(values);
        let batch = RecordBatch::try_new(Arc::clone(&file), vec![Arc::new(values)]).expect("batch");
        (table, file, batch)
    }

    #[test]
    fn filters_read_view_text_without_a_cast_and_answer_as_before() {
        let (table, file, batch) = text_column(
            "code",
            vec![
                Some("AccessDenied"),
                None,
                Some("Client.UnauthorizedOperation"),
                Some("NoSuchBucket"),
                Some("a long error code that is not inlined in its view"),
            ],
        );
        let ctx = SessionContext::new();
        let df_schema = DFSchema::try_from(Arc::clone(&table)).expect("schema");
        let code = || col("code");
        let filters = [
            code().like(lit("%Unauthorized%")),
            code().not_like(lit("a long%")),
            code().ilike(lit("access%")),
            code().is_null(),
            code().is_not_null(),
            code().like(lit("No%")).or(code().like(lit("%Denied"))),
        ];
        for filter in filters {
            let planned = ctx
                .create_physical_expr(filter.clone(), &df_schema)
                .expect("plan");
            let (default, ours) = adapted(&table, &file, planned);
            assert!(casts(&default) > 0, "{filter}: DataFusion casts the views");
            assert_eq!(casts(&ours), 0, "{filter}: {ours}");
            let answer = |e: &Arc<dyn PhysicalExpr>| evaluated(e, &batch);
            assert_eq!(answer(&ours), answer(&default), "{filter}");
        }
    }

    #[test]
    fn strpos_searches_json_read_as_views_without_a_cast_and_answers_as_before() {
        let (table, file, batch) = text_column(
            "json",
            vec![
                Some(r#"{"bucketName":"customer-exports-prod"}"#),
                None,
                Some("exports"),
                Some(r#"{"bucketName":"logs","key":"été/exports.csv"}"#),
                Some(""),
            ],
        );
        let ctx = SessionContext::new();
        ctx.register_udf(crate::strpos::strpos());
        let df_schema = DFSchema::try_from(Arc::clone(&table)).expect("schema");
        let plan = |sql: &str| {
            let filter = ctx.parse_sql_expr(sql, &df_schema).expect("parse");
            ctx.create_physical_expr(filter, &df_schema).expect("plan")
        };
        let (t, f) = (Some(true), Some(false));
        for (sql, searched, expected) in [
            (
                "strpos(json, 'exports') > 0",
                "strpos(json@0, exports)",
                Some(vec![t, None, t, t, f]),
            ),
            // `coalesce(json, '')` as DataFusion plans it.
            (
                "strpos(CASE WHEN json IS NOT NULL THEN json ELSE '' END, 'exports') > 0",
                "strpos(CASE WHEN json@0 IS NOT NULL THEN json@0 ELSE  END, exports)",
                Some(vec![t, f, t, t, f]),
            ),
            // Positions in characters.
            (
                "instr(json, 'été') = 29",
                "strpos(json@0, été)",
                Some(vec![f, None, f, t, f]),
            ),
            ("strpos(json, '') > 0", "strpos(json@0, )", None),
        ] {
            let (default, ours) = adapted(&table, &file, plan(sql));
            // Both cast the position to compare it; DataFusion casts the text too.
            assert_eq!(casts(&ours), 1, "{sql}: {ours}");
            assert!(casts(&default) > 1, "{sql}: {default}");
            assert!(ours.to_string().contains(searched), "{sql}: {ours}");
            let answer = |e: &Arc<dyn PhysicalExpr>| evaluated(e, &batch);
            assert_eq!(answer(&ours), answer(&default), "{sql}");
            if let Some(expected) = expected {
                assert_eq!(answer(&ours), BooleanArray::from(expected), "{sql}");
            }
        }
        // A fragment per row, and text that is no column, are searched as planned (plain text).
        for sql in [
            "strpos(json, json) > 0",
            "strpos(CASE WHEN json IS NULL THEN 'a' ELSE 'b' END, 'a') > 0",
        ] {
            let (_, ours) = adapted(&table, &file, plan(sql));
            let mut searched = Vec::new();
            ours.apply(|e| {
                if let Some(call) = e.downcast_ref::<ScalarFunctionExpr>()
                    && call.name() == "strpos"
                {
                    searched.push(call.args()[0].data_type(&file).expect("type"));
                }
                Ok(datafusion::common::tree_node::TreeNodeRecursion::Continue)
            })
            .expect("walk");
            assert_eq!(searched, [DataType::Utf8], "{sql}: {ours}");
        }
    }

    #[test]
    fn actor_reads_the_identity_as_views_without_a_cast_and_answers_as_before() {
        use arrow::array::StructArray;
        let members = ["type", "principalid", "arn", "accountid", "invokedby"];
        let identity = |text: DataType| {
            DataType::Struct(
                members
                    .iter()
                    .map(|m| Field::new(*m, text.clone(), true))
                    .collect(),
            )
        };
        let column = |text: DataType| {
            Arc::new(Schema::new(vec![Field::new(
                "useridentity",
                identity(text),
                true,
            )]))
        };
        let (table, file) = (column(DataType::Utf8), column(DataType::Utf8View));
        // Rows: a user, a service, an identity with only a principal id, one with only a
        // type, one with none of the four, and no identity at all.
        let rows: [[Option<&str>; 5]; 6] = [
            [
                Some("IAMUser"),
                Some("AIDAEXAMPLE"),
                Some("arn:aws:iam::111122223333:user/a-user-name-longer-than-a-view-holds"),
                Some("111122223333"),
                None,
            ],
            [
                Some("AWSService"),
                None,
                None,
                None,
                Some("ec2.amazonaws.com"),
            ],
            [Some("Unknown"), Some("AROAEXAMPLE:x"), None, None, None],
            [Some("Root"), None, None, Some("111122223333"), None],
            [None, None, None, Some("111122223333"), None],
            [None; 5],
        ];
        let DataType::Struct(fields) = identity(DataType::Utf8View) else {
            panic!("a struct")
        };
        let values = (0..members.len())
            .map(|m| Arc::new(StringViewArray::from_iter(rows.iter().map(|r| r[m]))) as _)
            .collect();
        let valid = vec![true, true, true, true, true, false];
        let identities = StructArray::new(fields, values, Some(valid.into()));
        let batch =
            RecordBatch::try_new(Arc::clone(&file), vec![Arc::new(identities)]).expect("batch");
        let ctx = SessionContext::new();
        ctx.register_udf(crate::udf::actor());
        ctx.register_udf(crate::udf::actor_of());
        let planned = planned_actor(&ctx, &table);
        assert!(planned.to_string().starts_with("actor_of("), "{planned}");
        let (default, ours) = adapted(&table, &file, planned);
        assert_eq!(casts(&default), 4, "{default}");
        assert_eq!(casts(&ours), 0, "{ours}");
        let answer = |e: &Arc<dyn PhysicalExpr>| {
            let out = e.evaluate(&batch).expect("evaluate");
            let out = out.into_array(batch.num_rows()).expect("array");
            assert_eq!(out.data_type(), &DataType::Utf8);
            out.as_string::<i32>()
                .iter()
                .map(|v| v.map(str::to_string))
                .collect::<Vec<_>>()
        };
        let expected = [
            Some("arn:aws:iam::111122223333:user/a-user-name-longer-than-a-view-holds"),
            Some("ec2.amazonaws.com"),
            Some("AROAEXAMPLE:x"),
            Some("Root"),
            None,
            None,
        ];
        assert_eq!(answer(&ours), expected.map(|v| v.map(str::to_string)));
        assert_eq!(answer(&ours), answer(&default));

        // A table that stores the actor (column `actor`, as ingest writes it) plans
        // `actor(useridentity)` as that column: a file that has it reads it and no member of
        // the identity; a file written before gives it from the members. Both the same text.
        let (table_stored, file_stored, batch_stored) = with_stored(
            (&table, &file, &batch),
            ACTOR,
            StringViewArray::from_iter(expected),
        );
        let stored_plan = planned_actor(&ctx, &table_stored);
        assert_eq!(stored_plan.to_string(), "actor@1", "{stored_plan}");
        // A column `actor` that is not the table's (unmarked: one a query named so) is not it.
        let unmarked = Arc::new(Schema::new(
            table_stored
                .fields()
                .iter()
                .map(|f| f.as_ref().clone().with_metadata(Default::default()))
                .collect::<Vec<_>>(),
        ));
        let planned = planned_actor(&ctx, &unmarked);
        assert!(planned.to_string().starts_with("actor_of("), "{planned}");
        let (_, ours) = adapted(&table_stored, &file_stored, Arc::clone(&stored_plan));
        assert!(!ours.to_string().contains("useridentity"), "{ours}");
        let out = ours.evaluate(&batch_stored).expect("evaluate");
        let out = out.into_array(batch_stored.num_rows()).expect("array");
        assert_eq!(out.data_type(), &DataType::Utf8);
        let got: Vec<Option<String>> = out
            .as_string::<i32>()
            .iter()
            .map(|v| v.map(str::to_string))
            .collect();
        assert_eq!(got, expected.map(|v| v.map(str::to_string)));
        let (_, ours) = adapted(&table_stored, &file, stored_plan);
        assert!(ours.to_string().starts_with("actor_of("), "{ours}");
        assert_eq!(answer(&ours), expected.map(|v| v.map(str::to_string)));
        // A table without the column (a lake made before) reads the members, not a file's
        // column it lacks.
        let (_, ours) = adapted(&table, &file_stored, planned_actor(&ctx, &table));
        assert!(ours.to_string().starts_with("actor_of("), "{ours}");
        assert!(!ours.to_string().contains("actor@"), "{ours}");
    }

    #[test]
    fn resource_arns_reads_the_resources_as_views_without_a_cast() {
        use arrow::array::{ListArray, StructArray};
        use arrow::buffer::OffsetBuffer;
        let resource = |text: DataType| {
            Field::new(
                "item",
                DataType::Struct(
                    vec![
                        Field::new("arn", text.clone(), true),
                        Field::new("type", text, true),
                    ]
                    .into(),
                ),
                true,
            )
        };
        let list = |text: DataType| DataType::List(Arc::new(resource(text)));
        let table = Arc::new(Schema::new(vec![Field::new(
            "resources",
            list(DataType::Utf8),
            true,
        )]));
        let file = Arc::new(Schema::new(vec![Field::new(
            "resources",
            list(DataType::Utf8View),
            true,
        )]));
        let DataType::Struct(members) = resource(DataType::Utf8View).data_type().clone() else {
            panic!("a struct")
        };
        let structs = StructArray::new(
            members,
            vec![
                Arc::new(StringViewArray::from(vec![
                    "arn:aws:s3:::customer-exports-prod",
                    "arn:aws:iam::111122223333:role/builder",
                    "arn:aws:s3:::logs",
                ])),
                Arc::new(StringViewArray::from(vec![
                    "AWS::S3::Bucket",
                    "AWS::IAM::Role",
                    "AWS::S3::Bucket",
                ])),
            ],
            None,
        );
        let resources = ListArray::new(
            Arc::new(resource(DataType::Utf8View)),
            OffsetBuffer::from_lengths([2, 0, 1]),
            Arc::new(structs),
            Some(vec![true, false, true].into()),
        );
        let batch =
            RecordBatch::try_new(Arc::clone(&file), vec![Arc::new(resources)]).expect("batch");
        let ctx = SessionContext::new();
        ctx.register_udf(crate::udf::resource_arns());
        let df_schema = DFSchema::try_from(Arc::clone(&table)).expect("schema");
        let filter = ctx
            .parse_sql_expr(
                "strpos(resource_arns(resources), 'exports') > 0",
                &df_schema,
            )
            .expect("parse");
        let planned = ctx.create_physical_expr(filter, &df_schema).expect("plan");
        let (default, ours) = adapted(&table, &file, planned);
        // Both cast strpos's position to compare it with 0; DataFusion casts the list too.
        assert_eq!(casts(&default), 2, "{default}");
        assert_eq!(casts(&ours), 1, "{ours}");
        assert!(
            ours.to_string().contains("resource_arns(resources@0)"),
            "{ours}"
        );
        let answer = |e: &Arc<dyn PhysicalExpr>| evaluated(e, &batch);
        assert_eq!(
            answer(&ours),
            BooleanArray::from(vec![Some(true), None, Some(false)])
        );
        assert_eq!(answer(&ours), answer(&default));

        // As the planner simplifies it, the list comes narrowed to its ARNs, and the scan
        // reads it as a cast of the file's column to that narrower list: the form DataFusion's
        // Parquet scan reads only the named members for. Simplified twice (as each optimizer
        // pass does), it stays narrowed once.
        let planned = planned_narrowed(&ctx, &table, 2);
        assert_eq!(
            planned.to_string().matches(crate::udf::ARNS_ONLY).count(),
            1,
            "{planned}"
        );
        let (default, ours) = adapted(&table, &file, planned);
        let narrowed = crate::udf::arns_only_type(&list(DataType::Utf8)).expect("narrowed");
        let mut cast_of_column = None;
        ours.apply(|e| {
            if let Some(cast) = e.downcast_ref::<CastExpr>()
                && cast.expr().downcast_ref::<Column>().is_some()
            {
                cast_of_column = Some(cast.cast_type().clone());
            }
            Ok(datafusion::common::tree_node::TreeNodeRecursion::Continue)
        })
        .expect("walk");
        assert_eq!(cast_of_column, Some(narrowed), "{ours}");
        assert!(!ours.to_string().contains(crate::udf::ARNS_ONLY), "{ours}");
        assert_eq!(
            answer(&ours),
            BooleanArray::from(vec![Some(true), None, Some(false)])
        );
        assert_eq!(answer(&ours), answer(&default));

        // A file that stores the ARNs (column `resourcearns`, as ingest writes it) is searched
        // in that column: the list is not read at all, and the answer is the same.
        let stored = trailhouse_lake::arns::resource_arns(batch.column(0).as_ref()).expect("arns");
        let (table_stored, file_stored, batch_stored) = with_stored(
            (&table, &file, &batch),
            RESOURCEARNS,
            StringViewArray::from_iter(stored.iter()),
        );
        let narrowed_filter = planned_narrowed(&ctx, &table_stored, 1);
        let (default, ours) = adapted(&table_stored, &file_stored, Arc::clone(&narrowed_filter));
        assert!(ours.to_string().contains("resourcearns@1"), "{ours}");
        assert!(!ours.to_string().contains("resources@0"), "{ours}");
        assert!(
            !ours.to_string().contains(crate::udf::RESOURCE_ARNS),
            "{ours}"
        );
        // strpos searches the stored views as they are: the one cast left is of its position.
        assert_eq!(casts(&ours), 1, "{ours}");
        assert_eq!(
            evaluated(&ours, &batch_stored),
            BooleanArray::from(vec![Some(true), None, Some(false)])
        );
        assert_eq!(
            evaluated(&ours, &batch_stored),
            evaluated(&default, &batch_stored)
        );
        // A file without the column (written before it was added) reads the narrowed list;
        // and a table without it (a lake made before) does not read a file's column it lacks.
        let (_, ours) = adapted(&table_stored, &file, Arc::clone(&narrowed_filter));
        assert!(ours.to_string().contains("resources@0"), "{ours}");
        assert_eq!(
            evaluated(&ours, &batch),
            BooleanArray::from(vec![Some(true), None, Some(false)])
        );
        let (_, ours) = adapted(&table, &file_stored, planned_narrowed(&ctx, &table, 1));
        assert!(ours.to_string().contains("resources@0"), "{ours}");
        assert!(!ours.to_string().contains(RESOURCEARNS), "{ours}");
    }

    /// The table's and the file's schema, and the file's batch, with one more text column
    /// `name` holding `values` (as a stored column: plain text in the table, marked if derived,
    /// views in the file).
    fn with_stored(
        (table, file, batch): (&SchemaRef, &SchemaRef, &RecordBatch),
        name: &str,
        values: StringViewArray,
    ) -> (SchemaRef, SchemaRef, RecordBatch) {
        let with = |schema: &SchemaRef, text: DataType| {
            let mut fields = schema.fields().to_vec();
            fields.push(Arc::new(Field::new(name, text, true)));
            Arc::new(Schema::new(fields))
        };
        // Marked as the lake's table marks its derived columns.
        let table = trailhouse_lake::schema::marked_derived(&with(table, DataType::Utf8));
        let file = with(file, DataType::Utf8View);
        let mut columns = batch.columns().to_vec();
        columns.push(Arc::new(values));
        let batch = RecordBatch::try_new(Arc::clone(&file), columns).expect("batch");
        (table, file, batch)
    }

    /// `actor(useridentity)` over `table`, simplified as the optimizer does and planned.
    fn planned_actor(ctx: &SessionContext, table: &SchemaRef) -> Arc<dyn PhysicalExpr> {
        let df_schema = DFSchema::try_from(Arc::clone(table)).expect("schema");
        let expr = ctx
            .parse_sql_expr("actor(useridentity)", &df_schema)
            .expect("parse");
        let context = SimplifyContext::builder()
            .with_schema(Arc::new(df_schema.clone()))
            .build();
        let expr = ExprSimplifier::new(context)
            .simplify(expr)
            .expect("simplify");
        ctx.create_physical_expr(expr, &df_schema).expect("plan")
    }

    /// The filter `strpos(resource_arns(resources), 'exports') > 0` over `table`, simplified
    /// `passes` times as the planner does (the list narrowed to its ARNs) and planned.
    fn planned_narrowed(
        ctx: &SessionContext,
        table: &SchemaRef,
        passes: usize,
    ) -> Arc<dyn PhysicalExpr> {
        let df_schema = DFSchema::try_from(Arc::clone(table)).expect("schema");
        let mut filter = ctx
            .parse_sql_expr(
                "strpos(resource_arns(resources), 'exports') > 0",
                &df_schema,
            )
            .expect("parse");
        let context = SimplifyContext::builder()
            .with_schema(Arc::new(df_schema.clone()))
            .build();
        for _ in 0..passes {
            filter = ExprSimplifier::new(context.clone())
                .simplify(filter)
                .expect("simplify");
        }
        ctx.create_physical_expr(filter, &df_schema).expect("plan")
    }
}
