//! The `credentials` table: one row per temporary access key that STS minted (AssumeRole,
//! AssumeRoleWithSAML, AssumeRoleWithWebIdentity, GetSessionToken, GetFederationToken), with the
//! call that minted it and the **origin** of its chain of STS calls, followed through role
//! chaining back to the first caller (a long-term key, a federated sign-in, or a principal of
//! an AWS service), cycle-safe and at most [`MAX_HOPS`] calls deep.
//!
//! It is derived from `cloudtrail` (`credentials_mints.sql` finds the calls,
//! `credentials_agg.sql` keeps one row per key, then the chains are walked here) on the first
//! query that reads it after the table changed, and kept beside the table in
//! `_trailhouse/credentials/` keyed by the table's id and version, so that questions about
//! temporary keys ("who is behind ASIA…", "who deleted the bucket, really") join a small,
//! key-sorted table instead of re-reading every STS call of the window on each step of a chain.
//! When an earlier version is cached and the table has only grown since (ingest adds files), only
//! the added files are read and their calls merged into the cached rows: the cost of an ingest's
//! derivation follows what it ingested, not the size of the lake. When the cache cannot be
//! written (a read-only lake) the table lives in memory for the session.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Int64Array, RecordBatch, StringArray, StringBuilder};
use arrow::compute::{cast, concat_batches};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use async_trait::async_trait;
use datafusion::catalog::{Session as CatalogSession, TableProvider};
use datafusion::common::{DataFusionError, Result};
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::datasource::{MemTable, TableType};
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::prelude::SessionContext;
use deltalake_core::DeltaTable;
use trailhouse_lake::schema;

use crate::lake_table::LakeTable;
use futures::lock::Mutex;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties};

/// The table's name in SQL.
pub const TABLE_NAME: &str = "credentials";

/// The longest chain of STS calls followed back to its origin.
pub const MAX_HOPS: usize = 10;

/// Bumped when the cached file's columns change, so an old cache is rebuilt, not misread.
/// Format 2 holds `pref`, which copy of a call each row took, so that it can be merged.
const CACHE_FORMAT: u32 = 2;

const MINTS_SQL: &str = include_str!("credentials_mints.sql");
const AGG_SQL: &str = include_str!("credentials_agg.sql");

/// The cached rows of an earlier state of the table, as `credentials_agg.sql` reads them.
const PREVIOUS: &str = "credentials_previous";

/// The cache file's column that says which copy of a call a row took (not shown in SQL).
const PREF: &str = "pref";

/// A temporary cache file older than this was left by a process that died.
const ABANDONED_AFTER: std::time::Duration = std::time::Duration::from_secs(3600);

/// Columns added to the STS calls by walking their chains.
const ORIGIN_COLUMNS: [&str; 6] = [
    "origin",
    "origin_type",
    "origin_key",
    "origin_call",
    "origin_subject",
    "origin_source_identity",
];

/// The SQL that derives the table's STS calls from `cloudtrail`.
pub fn build_sql() -> String {
    format!("WITH mints AS (\n{MINTS_SQL}\n)\n{AGG_SQL}")
}

/// The same, merging the cached calls of an earlier state (table `credentials_previous`) with
/// the calls of the files added since. The merge gives what [`build_sql`] gives over the whole
/// table: `max` of maxima is the maximum, and a cached row carries the `(pref, eventid)` it was
/// chosen by, so the first of it and the new copies is the first of all copies.
fn merge_sql() -> String {
    let columns = MINTS_COLUMNS.join(", ");
    format!(
        "WITH mints AS (\n{MINTS_SQL}\nUNION ALL\nSELECT {columns} FROM {PREVIOUS}\n)\n{AGG_SQL}"
    )
}

/// The columns of `credentials_mints.sql`, in order (the cache file's first columns).
const MINTS_COLUMNS: [&str; 16] = [
    "minted_key",
    "minted_session",
    "caller_key",
    "caller",
    "caller_type",
    "eventname",
    "eventtime",
    "role_arn",
    "session_name",
    "source_identity",
    "federated_subject",
    "federated_issuer",
    "sourceipaddress",
    "account",
    "eventid",
    PREF,
];

/// Where the table of each state of the lake is kept: `<dir>/<table id>-v<version>-f<format>`.
#[derive(Debug, Clone)]
pub struct CacheDir {
    pub dir: PathBuf,
    pub table_id: String,
    pub version: u64,
}

impl CacheDir {
    fn file(&self, version: u64) -> PathBuf {
        self.dir.join(format!(
            "{}-v{version}-f{CACHE_FORMAT}.parquet",
            self.table_id
        ))
    }

    /// The newest cached earlier state of the same table, with its version.
    fn previous(&self) -> Option<(PathBuf, u64)> {
        let prefix = format!("{}-v", self.table_id);
        let suffix = format!("-f{CACHE_FORMAT}.parquet");
        fs::read_dir(&self.dir)
            .ok()?
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                let version: u64 = name
                    .strip_prefix(&prefix)?
                    .strip_suffix(&suffix)?
                    .parse()
                    .ok()?;
                (version < self.version).then(|| (e.path(), version))
            })
            .max_by_key(|(_, v)| *v)
    }
}

/// The columns SQL sees of the cache file's (all but `pref`).
fn visible(file_schema: &Schema) -> Vec<usize> {
    (0..file_schema.fields().len())
        .filter(|&i| file_schema.field(i).name() != PREF)
        .collect()
}

/// What the table is derived from: a context of its own with the session's settings and
/// functions and the whole `cloudtrail` registered, and the Delta table itself for finding the
/// files added since a cached state.
pub struct Sources {
    pub ctx: SessionContext,
    pub delta: DeltaTable,
}

/// The `credentials` table provider: derived on first scan, then cached.
pub struct CredentialsTable {
    sources: Sources,
    /// The STS calls' columns, with `pref`, then the origin columns and `hops`: the cache file's.
    file_schema: SchemaRef,
    /// The same without `pref`: what SQL sees.
    schema: SchemaRef,
    cache: Option<CacheDir>,
    table: Mutex<Option<Arc<dyn TableProvider>>>,
}

impl fmt::Debug for CredentialsTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CredentialsTable")
            .field("cache", &self.cache)
            .finish()
    }
}

impl CredentialsTable {
    /// `sources.ctx` has `cloudtrail` registered; `cache` names this state of the table (None:
    /// do not cache).
    pub async fn new(sources: Sources, cache: Option<CacheDir>) -> Result<Self> {
        let calls = sources
            .ctx
            .sql(&build_sql())
            .await?
            .schema()
            .inner()
            .clone();
        let mut fields: Vec<Field> = calls.fields().iter().map(|f| f.as_ref().clone()).collect();
        fields.extend(
            ORIGIN_COLUMNS
                .iter()
                .map(|c| Field::new(*c, DataType::Utf8, true)),
        );
        fields.push(Field::new("hops", DataType::Int64, false));
        let file_schema = Arc::new(Schema::new(fields));
        Ok(Self {
            sources,
            schema: Arc::new(file_schema.project(&visible(&file_schema))?),
            file_schema,
            cache,
            table: Mutex::new(None),
        })
    }

    async fn table(&self) -> Result<Arc<dyn TableProvider>> {
        let mut table = self.table.lock().await;
        if let Some(t) = table.as_ref() {
            return Ok(Arc::clone(t));
        }
        let t = match &self.cache {
            Some(cache) if cache.file(cache.version).is_file() => {
                self.listing(&cache.file(cache.version), &self.schema)?
            }
            Some(cache) => {
                let batch = self.derive(Some(cache)).await?;
                let path = cache.file(cache.version);
                match write_cache(&path, &batch) {
                    Ok(()) => self.listing(&path, &self.schema)?,
                    // An unwritable lake: the table lives in memory for this session.
                    Err(_) => self.in_memory(batch)?,
                }
            }
            None => self.in_memory(self.derive(None).await?)?,
        };
        *table = Some(Arc::clone(&t));
        Ok(t)
    }

    fn in_memory(&self, batch: RecordBatch) -> Result<Arc<dyn TableProvider>> {
        let columns = visible(&batch.schema());
        Ok(Arc::new(MemTable::try_new(
            Arc::clone(&self.schema),
            vec![vec![batch.project(&columns)?]],
        )?))
    }

    fn listing(&self, path: &Path, schema: &SchemaRef) -> Result<Arc<dyn TableProvider>> {
        let url = ListingTableUrl::parse(path.to_string_lossy())?;
        let options =
            ListingOptions::new(Arc::new(ParquetFormat::default())).with_file_extension(".parquet");
        let config = ListingTableConfig::new(url)
            .with_listing_options(options)
            .with_schema(Arc::clone(schema));
        Ok(Arc::new(ListingTable::try_new(config)?))
    }

    /// Runs the STS-call query and walks every key's chain: over the files added since the
    /// newest cached earlier state, merged with that state's calls, when the table has only
    /// grown since (ingest only adds files); over the whole table otherwise.
    async fn derive(&self, cache: Option<&CacheDir>) -> Result<RecordBatch> {
        let merged = match cache.and_then(CacheDir::previous) {
            Some((path, version)) => self.merge(&path, version).await?,
            None => None,
        };
        let calls = match merged {
            Some(calls) => calls,
            None => {
                let df = self.sources.ctx.sql(&build_sql()).await?;
                let schema = df.schema().inner().clone();
                concat_batches(&schema, &df.collect().await?)?
            }
        };
        with_origins(&calls, &self.file_schema)
    }

    /// The calls of `previous` (the cache of `version`) merged with those of the files added
    /// since; `None` when files were removed since (compaction), or the files cannot be told.
    async fn merge(&self, previous: &Path, version: u64) -> Result<Option<RecordBatch>> {
        let delta = &self.sources.delta;
        let provider_schema = self
            .sources
            .ctx
            .table_provider(schema::TABLE_NAME)
            .await?
            .schema();
        // Anything unreadable here: derive from the whole table instead.
        let Ok(Some(now)) = LakeTable::try_new(delta, Arc::clone(&provider_schema)) else {
            return Ok(None);
        };
        let mut then = delta.clone();
        if then.load_version(version).await.is_err() {
            return Ok(None);
        }
        let Ok(Some(before)) = LakeTable::try_new(&then, provider_schema) else {
            return Ok(None);
        };
        let before: HashSet<&str> = before.paths().collect();
        let now_paths: HashSet<&str> = now.paths().collect();
        if !before.is_subset(&now_paths) {
            return Ok(None);
        }
        let added: HashSet<String> = now_paths
            .difference(&before)
            .map(|p| p.to_string())
            .collect();
        let ctx = crate::session::context(
            self.sources.ctx.copied_config(),
            self.sources.ctx.runtime_env(),
        )
        .map_err(|e| DataFusionError::External(Box::new(e)))?;
        ctx.register_table(schema::TABLE_NAME, Arc::new(now.restricted_to(&added)))?;
        ctx.register_table(PREVIOUS, self.listing(previous, &self.file_schema)?)?;
        let df = ctx.sql(&merge_sql()).await?;
        let schema = df.schema().inner().clone();
        Ok(Some(concat_batches(&schema, &df.collect().await?)?))
    }
}

#[async_trait]
impl TableProvider for CredentialsTable {
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
        // Passed on to the Parquet scan for row-group pruning; applied again above it.
        Ok(vec![TableProviderFilterPushDown::Inexact; filters.len()])
    }
    async fn scan(
        &self,
        state: &dyn CatalogSession,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        self.table()
            .await?
            .scan(state, projection, filters, limit)
            .await
    }
}

fn utf8(batch: &RecordBatch, name: &str) -> Result<ArrayRef> {
    let col = batch
        .column_by_name(name)
        .ok_or_else(|| DataFusionError::Internal(format!("credentials: no column {name}")))?;
    Ok(cast(col, &DataType::Utf8)?)
}

/// Appends the origin columns: for each minted key, the STS call that minted the caller's key,
/// and so on, until a caller whose key no STS call in the table minted.
pub(crate) fn with_origins(calls: &RecordBatch, schema: &SchemaRef) -> Result<RecordBatch> {
    let minted = utf8(calls, "minted_key")?;
    let caller_key = utf8(calls, "caller_key")?;
    let caller = utf8(calls, "caller")?;
    let caller_type = utf8(calls, "caller_type")?;
    let call = utf8(calls, "eventname")?;
    let subject = utf8(calls, "federated_subject")?;
    let source_identity = utf8(calls, "source_identity")?;
    let (minted, caller_key, caller, caller_type, call, subject, source_identity) = (
        minted.as_string::<i32>(),
        caller_key.as_string::<i32>(),
        caller.as_string::<i32>(),
        caller_type.as_string::<i32>(),
        call.as_string::<i32>(),
        subject.as_string::<i32>(),
        source_identity.as_string::<i32>(),
    );

    let by_key: HashMap<&str, usize> = (0..minted.len())
        .filter_map(|i| value(minted, i).map(|k| (k, i)))
        .collect();
    let rows = calls.num_rows();
    let mut builders: Vec<StringBuilder> = (0..ORIGIN_COLUMNS.len())
        .map(|_| StringBuilder::with_capacity(rows, rows * 32))
        .collect();
    let mut hops = Vec::with_capacity(rows);
    let mut seen = HashSet::new();
    for i in 0..rows {
        seen.clear();
        if let Some(k) = value(minted, i) {
            seen.insert(k);
        }
        let mut at = i;
        let mut depth = 1usize;
        let mut identity = value(source_identity, i);
        while depth < MAX_HOPS {
            let Some(next) = value(caller_key, at).and_then(|k| by_key.get(k).copied()) else {
                break;
            };
            if !value(minted, next).is_some_and(|k| seen.insert(k)) {
                break; // a cycle
            }
            at = next;
            depth += 1;
            identity = value(source_identity, at).or(identity);
        }
        let origin = [
            value(caller, at),
            value(caller_type, at),
            value(caller_key, at),
            value(call, at),
            value(subject, at),
            identity,
        ];
        for (b, v) in builders.iter_mut().zip(origin) {
            b.append_option(v);
        }
        hops.push(depth as i64);
    }
    let mut columns: Vec<ArrayRef> = calls.columns().to_vec();
    columns.extend(
        builders
            .into_iter()
            .map(|mut b| Arc::new(b.finish()) as ArrayRef),
    );
    columns.push(Arc::new(Int64Array::from(hops)));
    Ok(RecordBatch::try_new(Arc::clone(schema), columns)?)
}

fn value(a: &StringArray, i: usize) -> Option<&str> {
    a.is_valid(i).then(|| a.value(i))
}

/// Writes the table beside the lake (to a temporary name, then renamed into place), removing
/// the files of earlier states.
fn write_cache(path: &Path, batch: &RecordBatch) -> std::io::Result<()> {
    let dir = path
        .parent()
        .ok_or_else(|| std::io::Error::other("cache file without a directory"))?;
    fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(".tmp-{}", uuid::Uuid::new_v4()));
    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::default()))
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_max_row_group_row_count(Some(64 * 1024))
        .build();
    let write = || -> std::result::Result<(), parquet::errors::ParquetError> {
        let mut w = ArrowWriter::try_new(fs::File::create(&tmp)?, batch.schema(), Some(props))?;
        w.write(batch)?;
        w.close()?;
        Ok(())
    };
    if let Err(e) = write() {
        let _ = fs::remove_file(&tmp);
        return Err(std::io::Error::other(e));
    }
    fs::rename(&tmp, path)?;
    for entry in fs::read_dir(dir)?.flatten() {
        let p = entry.path();
        let temporary = p
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with(".tmp-"));
        // Another process may be writing its temporary file now; one an hour old was left by a
        // process that died.
        let abandoned = || {
            entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age > ABANDONED_AFTER)
        };
        if p != path && (!temporary || abandoned()) {
            let _ = fs::remove_file(p);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn calls(rows: &[(&str, Option<&str>, &str, &str)]) -> RecordBatch {
        let s = |v: Vec<Option<&str>>| Arc::new(StringArray::from(v)) as ArrayRef;
        let schema = Arc::new(Schema::new(
            [
                "minted_key",
                "caller_key",
                "caller",
                "caller_type",
                "eventname",
                "federated_subject",
                "source_identity",
            ]
            .iter()
            .map(|n| Field::new(*n, DataType::Utf8, true))
            .collect::<Vec<_>>(),
        ));
        RecordBatch::try_new(
            schema,
            vec![
                s(rows.iter().map(|r| Some(r.0)).collect()),
                s(rows.iter().map(|r| r.1).collect()),
                s(rows.iter().map(|r| Some(r.2)).collect()),
                s(rows.iter().map(|r| Some(r.3)).collect()),
                s(vec![Some("AssumeRole"); rows.len()]),
                s(vec![None; rows.len()]),
                s(vec![None; rows.len()]),
            ],
        )
        .expect("batch")
    }

    fn origins(batch: &RecordBatch) -> Vec<(String, i64)> {
        let mut fields: Vec<Field> = batch
            .schema()
            .fields()
            .iter()
            .map(|f| f.as_ref().clone())
            .collect();
        fields.extend(
            ORIGIN_COLUMNS
                .iter()
                .map(|c| Field::new(*c, DataType::Utf8, true)),
        );
        fields.push(Field::new("hops", DataType::Int64, false));
        let out = with_origins(batch, &Arc::new(Schema::new(fields))).expect("origins");
        let o = out.column_by_name("origin").expect("origin");
        let h = out.column_by_name("hops").expect("hops");
        (0..out.num_rows())
            .map(|i| {
                (
                    o.as_string::<i32>().value(i).to_string(),
                    h.as_primitive::<arrow::datatypes::Int64Type>().value(i),
                )
            })
            .collect()
    }

    #[test]
    fn chains_are_followed_to_the_first_caller() {
        let b = calls(&[
            ("ASIA1", Some("AKIAALICE"), "user/alice", "IAMUser"),
            (
                "ASIA2",
                Some("ASIA1"),
                "assumed-role/Ops/alice",
                "AssumedRole",
            ),
            (
                "ASIA3",
                Some("ASIA2"),
                "assumed-role/Admin/alice",
                "AssumedRole",
            ),
            ("ASIA9", None, "ec2.amazonaws.com", "AWSService"),
        ]);
        assert_eq!(
            origins(&b),
            vec![
                ("user/alice".into(), 1),
                ("user/alice".into(), 2),
                ("user/alice".into(), 3),
                ("ec2.amazonaws.com".into(), 1),
            ]
        );
    }

    #[test]
    fn cycles_and_long_chains_stop() {
        // Two keys minting each other (impossible in AWS, possible in bad data).
        let b = calls(&[
            ("ASIAA", Some("ASIAB"), "a", "AssumedRole"),
            ("ASIAB", Some("ASIAA"), "b", "AssumedRole"),
        ]);
        assert_eq!(origins(&b), vec![("b".into(), 2), ("a".into(), 2)]);
        let keys: Vec<String> = (0..15).map(|i| format!("ASIA{i}")).collect();
        let rows: Vec<(&str, Option<&str>, &str, &str)> = (0..15)
            .map(|i| {
                let caller = if i == 0 {
                    "AKIAROOT"
                } else {
                    keys[i - 1].as_str()
                };
                (keys[i].as_str(), Some(caller), "p", "AssumedRole")
            })
            .collect();
        let got = origins(&calls(&rows));
        assert_eq!(got[14].1, MAX_HOPS as i64);
        assert_eq!(got[3].1, 4);
    }
}
