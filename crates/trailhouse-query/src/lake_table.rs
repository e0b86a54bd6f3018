//! The `cloudtrail` table as DataFusion reads it: the data files of one Delta snapshot (their
//! paths, partition values and statistics from the Delta log, through delta-rs) scanned by
//! DataFusion's own Parquet source.
//!
//! delta-rs's table provider wraps the Parquet scan in its own operator, which keeps DataFusion
//! from pushing projections into the scan: a query that reads `useridentity.arn` then decodes
//! all 31 leaves of `useridentity` in every file. With DataFusion's source, only the leaves a
//! query names are read. Files are pruned at planning by their partition values (`day`,
//! `region`) and the Delta log's per-file statistics (`eventtime` bounds, null and row counts),
//! so EXPLAIN lists only the files a query reads; row groups, pages and bloom filters are
//! pruned by the Parquet source as before.
//!
//! Only tables with reader protocol 1 (no deletion vectors, no column mapping: what trailhouse
//! writes), local or in S3 (the session registers the bucket's client), are read this way;
//! others go through delta-rs's provider.

use std::collections::HashSet;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, BooleanArray, RecordBatch, UInt64Array};
use arrow::compute::cast;
use arrow::datatypes::{DataType, FieldRef, Schema, SchemaRef};
use async_trait::async_trait;
use datafusion::catalog::{Session as CatalogSession, TableProvider};
use datafusion::common::pruning::PruningStatistics;
use datafusion::common::stats::Precision;
use datafusion::common::{Column, DFSchema, Result, ScalarValue, Statistics};
use datafusion::datasource::TableType;
use datafusion::datasource::file_format::FileFormat;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::physical_plan::{FileGroup, FileScanConfigBuilder, ParquetSource};
use datafusion::datasource::table_schema::TableSchema;
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::logical_expr::utils::conjunction;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_optimizer::pruning::PruningPredicateBuilder;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::empty::EmptyExec;
use deltalake_core::DeltaTable;

/// One data file of the snapshot.
#[derive(Debug, Clone)]
struct DataFile {
    file: PartitionedFile,
    rows: Option<u64>,
}

/// The snapshot's data files, read by DataFusion's Parquet source.
#[derive(Debug)]
pub struct LakeTable {
    schema: SchemaRef,
    file_schema: SchemaRef,
    partition_fields: Vec<FieldRef>,
    files: Vec<DataFile>,
    /// Each file's path in the Delta log, relative to the table.
    paths: Vec<String>,
    /// Which files a scan may read (all when `None`): see [`LakeTable::restricted_to`].
    only: Option<Vec<bool>>,
    stats: FileStats,
    /// The object store the files are read from (the local file system, or a bucket).
    store: ObjectStoreUrl,
}

impl LakeTable {
    /// The files of `table`'s loaded snapshot, with `schema` the table's schema as delta-rs
    /// presents it (file columns, then partition columns). `None` when the table needs a
    /// reader feature this scan does not implement.
    pub fn try_new(
        table: &DeltaTable,
        schema: SchemaRef,
    ) -> std::result::Result<Option<Self>, crate::QueryError> {
        let snapshot = table.snapshot().map_err(delta_error)?;
        let reader_version = serde_json::to_value(snapshot.protocol())
            .ok()
            .and_then(|p| p["minReaderVersion"].as_i64());
        let root = table.table_url().clone();
        let store = match root.scheme() {
            "file" => ObjectStoreUrl::local_filesystem(),
            "s3" => ObjectStoreUrl::parse(format!("s3://{}", root.host_str().unwrap_or_default()))?,
            _ => return Ok(None),
        };
        if reader_version != Some(1) {
            return Ok(None);
        }
        let partition_names: Vec<String> = snapshot.metadata().partition_columns().to_vec();
        let partition_fields: Vec<FieldRef> = partition_names
            .iter()
            .map(|p| schema.field_with_name(p).map(|f| Arc::new(f.clone())))
            .collect::<std::result::Result<_, _>>()?;
        let file_schema = Arc::new(Schema::new(
            schema
                .fields()
                .iter()
                .filter(|f| !partition_names.contains(f.name()))
                .cloned()
                .collect::<Vec<_>>(),
        ));
        let actions = snapshot.add_actions_table(true).map_err(delta_error)?;
        let column = |name: &str| actions.column_by_name(name).cloned();
        let (Some(paths), Some(sizes)) = (column("path"), column("size_bytes")) else {
            return Ok(None);
        };
        let paths = cast(&paths, &DataType::Utf8)?;
        let paths = paths
            .as_any()
            .downcast_ref::<arrow::array::StringArray>()
            .cloned();
        let sizes = cast(&sizes, &DataType::UInt64)?;
        let sizes = sizes.as_any().downcast_ref::<UInt64Array>().cloned();
        let rows = column("num_records")
            .map(|c| cast(&c, &DataType::UInt64))
            .transpose()?;
        let rows = rows
            .as_ref()
            .and_then(|c| c.as_any().downcast_ref::<UInt64Array>());
        let (Some(paths), Some(sizes)) = (paths, sizes) else {
            return Ok(None);
        };
        let partition_values: Vec<ArrayRef> = partition_fields
            .iter()
            .map(|f| {
                let values = column(&format!("partition.{}", f.name())).ok_or_else(|| {
                    datafusion::error::DataFusionError::Plan(format!(
                        "the Delta log has no values for partition column {}",
                        f.name()
                    ))
                })?;
                Ok(cast(&values, f.data_type())?)
            })
            .collect::<Result<_>>()?;
        let mut files = Vec::with_capacity(actions.num_rows());
        let mut relative = Vec::with_capacity(actions.num_rows());
        for i in 0..actions.num_rows() {
            relative.push(paths.value(i).to_string());
            let url = root.join(paths.value(i)).map_err(|e| {
                datafusion::error::DataFusionError::Plan(format!(
                    "data file `{}` of the Delta log: {e}",
                    paths.value(i)
                ))
            })?;
            let location = object_store::path::Path::from_url_path(url.path())
                .map_err(|e| datafusion::error::DataFusionError::External(Box::new(e)))?;
            let mut file = PartitionedFile::new(location.to_string(), sizes.value(i));
            file.object_meta.location = location;
            file.partition_values = partition_values
                .iter()
                .map(|v| ScalarValue::try_from_array(v, i))
                .collect::<Result<_>>()?;
            files.push(DataFile {
                file,
                rows: rows.filter(|r| r.is_valid(i)).map(|r| r.value(i)),
            });
        }
        let stats = FileStats::new(&actions, &schema, &partition_fields, &partition_values);
        Ok(Some(Self {
            schema,
            file_schema,
            partition_fields,
            files,
            paths: relative,
            only: None,
            stats,
            store,
        }))
    }

    /// The data files' paths in the Delta log, relative to the table.
    pub fn paths(&self) -> impl Iterator<Item = &str> {
        self.paths.iter().map(String::as_str)
    }

    /// The same table, scanning only the files of `paths` (the files added since a version).
    pub fn restricted_to(mut self, paths: &HashSet<String>) -> Self {
        self.only = Some(self.paths.iter().map(|p| paths.contains(p)).collect());
        self
    }

    /// Which files may hold rows passing `filters` (all of them when the filters say nothing
    /// about the statistics).
    fn keep(&self, state: &dyn CatalogSession, filters: &[Expr]) -> Vec<bool> {
        let all = vec![true; self.files.len()];
        let Some(predicate) = conjunction(filters.iter().cloned()) else {
            return all;
        };
        let Ok(expr) = DFSchema::try_from(Arc::clone(&self.schema))
            .and_then(|df_schema| state.create_physical_expr(predicate, &df_schema))
        else {
            return all;
        };
        // `None` when the filters cannot prune (nothing about statistics in them).
        let Some(pruning) = PruningPredicateBuilder::new()
            .with_file_schema(Arc::clone(&self.schema))
            .build(expr)
        else {
            return all;
        };
        pruning.prune(&self.stats).unwrap_or(all)
    }
}

#[async_trait]
impl TableProvider for LakeTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        // Filters prune files here and row groups, pages and rows in the Parquet source; the
        // filter itself stays above the scan.
        Ok(vec![TableProviderFilterPushDown::Inexact; filters.len()])
    }

    async fn scan(
        &self,
        state: &dyn CatalogSession,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let mut keep = self.keep(state, filters);
        if let Some(only) = &self.only {
            keep.iter_mut().zip(only).for_each(|(k, o)| *k &= *o);
        }
        let mut kept: Vec<&DataFile> = self
            .files
            .iter()
            .zip(&keep)
            .filter(|(_, k)| **k)
            .map(|(f, _)| f)
            .collect();
        if kept.is_empty() {
            let projected = match projection {
                Some(p) => Arc::new(self.schema.project(p)?),
                None => Arc::clone(&self.schema),
            };
            return Ok(Arc::new(EmptyExec::new(projected)));
        }
        // Balance the groups by bytes: the largest files first, each to the lightest group.
        kept.sort_by_key(|f| std::cmp::Reverse(f.file.object_meta.size));
        let groups_wanted = state.config().target_partitions().max(1).min(kept.len());
        let mut groups: Vec<(u64, Vec<PartitionedFile>)> = vec![(0, Vec::new()); groups_wanted];
        for f in &kept {
            if let Some(g) = groups.iter_mut().min_by_key(|g| g.0) {
                g.0 += f.file.object_meta.size;
                g.1.push(f.file.clone());
            }
        }
        let rows: Option<u64> = kept.iter().map(|f| f.rows).sum();
        let mut statistics = Statistics::new_unknown(&self.schema);
        if let Some(rows) = rows.and_then(|r| usize::try_from(r).ok()) {
            statistics.num_rows = Precision::Exact(rows);
        }
        let table_schema = TableSchema::builder(Arc::clone(&self.file_schema))
            .with_table_partition_cols(self.partition_fields.clone())
            .build();
        let config = FileScanConfigBuilder::new(
            self.store.clone(),
            Arc::new(ParquetSource::new(table_schema)),
        )
        .with_file_groups(
            groups
                .into_iter()
                .map(|(_, files)| FileGroup::new(files))
                .collect(),
        )
        .with_statistics(statistics)
        .with_projection_indices(projection.cloned())?
        .with_limit(limit)
        .build();
        ParquetFormat::default()
            .with_options(state.table_options().parquet.clone())
            .create_physical_plan(state, config)
            .await
    }
}

fn delta_error(e: deltalake_core::DeltaTableError) -> crate::QueryError {
    crate::QueryError::from(datafusion::error::DataFusionError::External(Box::new(e)))
}

/// Per-file statistics for pruning, from the Delta log: partition values (a file's min and max),
/// and `min.`/`max.`/`null_count.` of top-level columns, with row counts.
#[derive(Debug)]
struct FileStats {
    files: usize,
    min: Vec<(String, ArrayRef)>,
    max: Vec<(String, ArrayRef)>,
    nulls: Vec<(String, ArrayRef)>,
    rows: Option<ArrayRef>,
}

impl FileStats {
    fn new(
        actions: &RecordBatch,
        schema: &SchemaRef,
        partition_fields: &[FieldRef],
        partition_values: &[ArrayRef],
    ) -> Self {
        let typed = |prefix: &str, field: &FieldRef| -> Option<(String, ArrayRef)> {
            let c = actions.column_by_name(&format!("{prefix}.{}", field.name()))?;
            let c = cast(c, field.data_type()).ok()?;
            Some((field.name().clone(), c))
        };
        let partitions: HashSet<&str> =
            partition_fields.iter().map(|f| f.name().as_str()).collect();
        let mut min = Vec::new();
        let mut max = Vec::new();
        let mut nulls = Vec::new();
        for field in schema.fields() {
            if partitions.contains(field.name().as_str()) {
                continue;
            }
            min.extend(typed("min", field));
            max.extend(typed("max", field));
            if let Some(c) = actions.column_by_name(&format!("null_count.{}", field.name()))
                && let Ok(c) = cast(c, &DataType::UInt64)
            {
                nulls.push((field.name().clone(), c));
            }
        }
        for (f, v) in partition_fields.iter().zip(partition_values) {
            min.push((f.name().clone(), Arc::clone(v)));
            max.push((f.name().clone(), Arc::clone(v)));
        }
        let rows = actions
            .column_by_name("num_records")
            .and_then(|c| cast(c, &DataType::UInt64).ok());
        Self {
            files: actions.num_rows(),
            min,
            max,
            nulls,
            rows,
        }
    }

    fn find(list: &[(String, ArrayRef)], column: &Column) -> Option<ArrayRef> {
        list.iter()
            .find(|(n, _)| n == column.name())
            .map(|(_, a)| Arc::clone(a))
    }
}

impl PruningStatistics for FileStats {
    fn min_values(&self, column: &Column) -> Option<ArrayRef> {
        Self::find(&self.min, column)
    }

    fn max_values(&self, column: &Column) -> Option<ArrayRef> {
        Self::find(&self.max, column)
    }

    fn num_containers(&self) -> usize {
        self.files
    }

    fn null_counts(&self, column: &Column) -> Option<ArrayRef> {
        Self::find(&self.nulls, column)
    }

    fn row_counts(&self) -> Option<ArrayRef> {
        self.rows.clone()
    }

    fn contained(&self, _column: &Column, _values: &HashSet<ScalarValue>) -> Option<BooleanArray> {
        None
    }
}
