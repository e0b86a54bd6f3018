//! How our tables and plan nodes travel between a cluster's client, scheduler and executors.
//!
//! Ballista sends the logical plan from the client to the scheduler and each stage's physical
//! plan from the scheduler to the executors, with DataFusion's protobuf codecs. Those know
//! DataFusion's own nodes (the Parquet scans `LakeTable` plans among them) but not ours, so our
//! codecs add:
//!
//! - the tables `cloudtrail` and `quarantine` ([`LakeTable`]), `credentials`
//!   ([`CredentialsTable`]) and `call_summary` ([`CallSummary`]), sent as *which table at which
//!   version* ([`Snapshot`]): the scheduler opens that snapshot of its own lake (the same files)
//!   and plans the scan (a call summary's scan reads the summaries kept beside the lake, and
//!   makes those missing);
//! - recursive queries (`WITH RECURSIVE`: session-origin's chain of STS calls), which
//!   DataFusion's codec does not send;
//! - the credentials lookups ([`CredentialsExec`], [`LookupJoin`], [`LookupJoinExec`]), sent
//!   as their expressions and settings: the node that runs one looks the keys up in the same
//!   snapshot of `cloudtrail`;
//! - the counts of distinct strings ([`CountDistinct`], [`CountDistinctExec`]), sent as the
//!   name of their column.
//!
//! A snapshot names its Delta table by the table's id, so a cluster serving another lake than the
//! client's refuses the query (its files would give another answer) instead of answering it.
//! Everything else goes to Ballista's codecs.

use std::sync::Arc;

use arrow::datatypes::Schema;
use ballista_core::serde::{BallistaLogicalExtensionCodec, BallistaPhysicalExtensionCodec};
use datafusion::catalog::TableProvider;
use datafusion::common::{DFSchema, DataFusionError, JoinType, Result, TableReference};
use datafusion::execution::TaskContext;
use datafusion::logical_expr::{Expr, Extension, LogicalPlan};
use datafusion::physical_plan::recursive_query::RecursiveQueryExec;
use datafusion::physical_plan::work_table::WorkTableExec;
use datafusion::physical_plan::{ExecutionPlan, PhysicalExpr};
use datafusion_proto::logical_plan::LogicalExtensionCodec;
use datafusion_proto::logical_plan::from_proto::parse_expr;
use datafusion_proto::logical_plan::to_proto::serialize_expr;
use datafusion_proto::physical_plan::from_proto::parse_physical_expr;
use datafusion_proto::physical_plan::to_proto::serialize_physical_expr;
use datafusion_proto::physical_plan::{PhysicalExtensionCodec, PhysicalProtoConverterExtension};
use datafusion_proto::protobuf;
use prost::Message;
use serde::{Deserialize, Serialize};

use super::ServedLake;
use crate::call_summary::CallSummary;
use crate::count_distinct::{CountDistinct, CountDistinctExec};
use crate::credentials::join::{LookupJoin, LookupJoinExec, Step};
use crate::credentials::{CredentialsExec, CredentialsTable, Lookup, Request};
use crate::lake_table::{LakeTable, Snapshot};

/// What our encodings start with; anything else is Ballista's.
const TAG: &[u8] = b"trailhouse/1\n";

/// Our logical nodes and tables, as sent.
#[derive(Debug, Serialize, Deserialize)]
enum LogicalNode {
    /// `cloudtrail` or `quarantine` (whichever the snapshot's table is, under whatever name the
    /// query gave it): the files of `snapshot` (those of `only`, when set).
    Table {
        snapshot: Snapshot,
        only: Option<Vec<String>>,
    },
    /// `credentials`, looked up in `snapshot` of `cloudtrail`.
    Credentials { snapshot: Snapshot },
    /// `call_summary` of `snapshot` of `cloudtrail`.
    CallSummary { snapshot: Snapshot },
    /// A join on `credentials.minted_key` planned as lookups ([`LookupJoin`]).
    LookupJoin(JoinParts),
    /// The count of its input's distinct values ([`CountDistinct`]), as column `name`.
    CountDistinct { name: String },
}

/// A join on `credentials.minted_key` planned as lookups, logical ([`LookupJoin`]) or physical
/// ([`LookupJoinExec`]): its expressions (encoded by the codec of their kind) and settings.
#[derive(Debug, Serialize, Deserialize)]
struct JoinParts {
    snapshot: Snapshot,
    key: Vec<u8>,
    lo: Option<Vec<u8>>,
    hi: Option<Vec<u8>>,
    condition: Option<Vec<u8>>,
    left: bool,
    credentials_first: bool,
    projection: Vec<usize>,
    schema: Vec<u8>,
}

impl JoinParts {
    /// The parts of a join whose expressions are `E`s, each encoded by `encode`.
    fn new<E>(
        lookup: &Lookup,
        [key, lo, hi, condition]: [Option<&E>; 4],
        left: bool,
        credentials_first: bool,
        projection: &[usize],
        schema: Vec<u8>,
        encode: impl Fn(&E) -> Result<Vec<u8>>,
    ) -> Result<Self> {
        let key = key.ok_or_else(|| DataFusionError::Internal("a lookup join's key".into()))?;
        Ok(Self {
            snapshot: snapshot_of_lookup(lookup)?,
            key: encode(key)?,
            lo: lo.map(&encode).transpose()?,
            hi: hi.map(&encode).transpose()?,
            condition: condition.map(&encode).transpose()?,
            left,
            credentials_first,
            projection: projection.to_vec(),
            schema,
        })
    }
}

/// Our physical nodes, and DataFusion's that its codec does not send, as sent.
#[derive(Debug, Serialize, Deserialize)]
enum PhysicalNode {
    /// A recursive query (`WITH RECURSIVE`): its static and recursive terms are its inputs.
    Recursive {
        name: String,
        distinct: bool,
        schema: Vec<u8>,
    },
    /// The rows of the recursive query's last round, in its recursive term.
    WorkTable {
        name: String,
        schema: Vec<u8>,
    },
    Credentials {
        snapshot: Snapshot,
        request: Request,
        projection: Option<Vec<usize>>,
    },
    LookupJoin(JoinParts),
    CountDistinct {
        name: String,
    },
}

fn write<T: Serialize>(node: &T, buf: &mut Vec<u8>) -> Result<()> {
    buf.extend_from_slice(TAG);
    serde_json::to_writer(buf, node).map_err(|e| DataFusionError::External(Box::new(e)))
}

/// Our node in `buf`, `None` when `buf` is not ours.
fn read<T: for<'de> Deserialize<'de>>(buf: &[u8]) -> Result<Option<T>> {
    let Some(body) = buf.strip_prefix(TAG) else {
        return Ok(None);
    };
    serde_json::from_slice(body)
        .map(Some)
        .map_err(|e| DataFusionError::Internal(format!("a trailhouse plan node: {e}")))
}

fn encode_schema(schema: &Schema) -> Result<Vec<u8>> {
    Ok(protobuf::Schema::try_from(schema)?.encode_to_vec())
}

fn decode_schema(bytes: &[u8]) -> Result<Arc<Schema>> {
    let schema = protobuf::Schema::decode(bytes)
        .map_err(|e| DataFusionError::Internal(format!("a schema: {e}")))?;
    Ok(Arc::new(Schema::try_from(&schema)?))
}

/// A lookup join's output: the credentials' columns as `sent` holds them (`credentials` of
/// them, first or last), beside the columns its input has where it is decoded. The two may
/// differ: DataFusion's codec sends a recursive query's work table without the projection the
/// client's optimizer gave it.
fn joined_schema(
    sent: &DFSchema,
    input: &DFSchema,
    credentials: usize,
    credentials_first: bool,
) -> Result<DFSchema> {
    let fields: Vec<_> = sent
        .iter()
        .map(|(q, f)| (q.cloned(), Arc::clone(f)))
        .collect();
    let Some(split) = fields.len().checked_sub(credentials) else {
        return Err(DataFusionError::Internal(
            "CredentialsLookupJoin: its schema lacks the credentials' columns".into(),
        ));
    };
    let theirs = if credentials_first {
        &fields[..credentials]
    } else {
        &fields[split..]
    };
    let input: Vec<_> = input
        .iter()
        .map(|(q, f)| (q.cloned(), Arc::clone(f)))
        .collect();
    let all = if credentials_first {
        [theirs, &input].concat()
    } else {
        [&input, theirs].concat()
    };
    DFSchema::new_with_metadata(all, sent.metadata().clone())
}

fn unknown_snapshot(what: &str) -> DataFusionError {
    DataFusionError::Plan(format!(
        "{what} reads a table without a known Delta version, which a cluster cannot open"
    ))
}

fn snapshot_of_lookup(lookup: &Lookup) -> Result<Snapshot> {
    lookup
        .snapshot()
        .cloned()
        .ok_or_else(|| unknown_snapshot("table `credentials`"))
}

fn served(lake: &Option<Arc<ServedLake>>) -> Result<&Arc<ServedLake>> {
    lake.as_ref().ok_or_else(|| {
        DataFusionError::Internal(
            "a trailhouse plan node reached a process that serves no lake".into(),
        )
    })
}

/// The logical codec: the client encodes with it, the scheduler decodes.
#[derive(Debug)]
pub struct LakeLogicalCodec {
    inner: BallistaLogicalExtensionCodec,
    lake: Option<Arc<ServedLake>>,
}

impl LakeLogicalCodec {
    /// The codec of a client (which only encodes).
    pub fn client() -> Self {
        Self {
            inner: BallistaLogicalExtensionCodec::default(),
            lake: None,
        }
    }

    /// The codec of a node serving `lake`.
    pub fn serving(lake: Arc<ServedLake>) -> Self {
        Self {
            inner: BallistaLogicalExtensionCodec::default(),
            lake: Some(lake),
        }
    }

    fn expr(&self, e: &Expr) -> Result<Vec<u8>> {
        Ok(serialize_expr(e, self)?.encode_to_vec())
    }

    fn parse(&self, bytes: &[u8], ctx: &TaskContext) -> Result<Expr> {
        let node = protobuf::LogicalExprNode::decode(bytes)
            .map_err(|e| DataFusionError::Internal(format!("an expression: {e}")))?;
        Ok(parse_expr(&node, ctx, self)?)
    }
}

impl LogicalExtensionCodec for LakeLogicalCodec {
    fn try_decode(
        &self,
        buf: &[u8],
        inputs: &[LogicalPlan],
        ctx: &TaskContext,
    ) -> Result<Extension> {
        let Some(node) = read::<LogicalNode>(buf)? else {
            return self.inner.try_decode(buf, inputs, ctx);
        };
        let parts = match node {
            LogicalNode::LookupJoin(parts) => parts,
            LogicalNode::CountDistinct { name } => {
                let [input] = inputs else {
                    return Err(DataFusionError::Internal(
                        "CountDistinct has one input".into(),
                    ));
                };
                return Ok(Extension {
                    node: Arc::new(CountDistinct::new(input.clone(), &name)?),
                });
            }
            LogicalNode::Table { .. }
            | LogicalNode::Credentials { .. }
            | LogicalNode::CallSummary { .. } => {
                return Err(DataFusionError::Internal(
                    "a trailhouse table where a plan node was expected".into(),
                ));
            }
        };
        let [input] = inputs else {
            return Err(DataFusionError::Internal(
                "CredentialsLookupJoin has one input".into(),
            ));
        };
        let schema = protobuf::DfSchema::decode(parts.schema.as_slice())
            .map_err(|e| DataFusionError::Internal(format!("a schema: {e}")))?;
        let schema = joined_schema(
            &DFSchema::try_from(&schema)?,
            input.schema(),
            parts.projection.len(),
            parts.credentials_first,
        )?;
        let parse = |e: &Vec<u8>| self.parse(e, ctx);
        let node = LookupJoin {
            input: input.clone(),
            key: parse(&parts.key)?,
            lo: parts.lo.as_ref().map(parse).transpose()?,
            hi: parts.hi.as_ref().map(parse).transpose()?,
            condition: parts.condition.as_ref().map(parse).transpose()?,
            join_type: if parts.left {
                JoinType::Left
            } else {
                JoinType::Inner
            },
            credentials_first: parts.credentials_first,
            lookup: served(&self.lake)?.lookup(&parts.snapshot)?,
            projection: parts.projection,
            schema: Arc::new(schema),
        };
        Ok(Extension {
            node: Arc::new(node),
        })
    }

    fn try_encode(&self, node: &Extension, buf: &mut Vec<u8>) -> Result<()> {
        if let Some(count) = node.node.as_any().downcast_ref::<CountDistinct>() {
            let name = count.name().to_string();
            return write(&LogicalNode::CountDistinct { name }, buf);
        }
        let Some(join) = node.node.as_any().downcast_ref::<LookupJoin>() else {
            return self.inner.try_encode(node, buf);
        };
        let schema = protobuf::DfSchema::try_from(join.schema.as_ref())?.encode_to_vec();
        write(
            &LogicalNode::LookupJoin(JoinParts::new(
                &join.lookup,
                [
                    Some(&join.key),
                    join.lo.as_ref(),
                    join.hi.as_ref(),
                    join.condition.as_ref(),
                ],
                join.join_type == JoinType::Left,
                join.credentials_first,
                &join.projection,
                schema,
                |e| self.expr(e),
            )?),
            buf,
        )
    }

    fn try_decode_table_provider(
        &self,
        buf: &[u8],
        table_ref: &TableReference,
        schema: arrow::datatypes::SchemaRef,
        ctx: &TaskContext,
    ) -> Result<Arc<dyn TableProvider>> {
        match read::<LogicalNode>(buf)? {
            None => self
                .inner
                .try_decode_table_provider(buf, table_ref, schema, ctx),
            Some(LogicalNode::Table { snapshot, only }) => {
                served(&self.lake)?.table(&snapshot, only)
            }
            Some(LogicalNode::Credentials { snapshot }) => Ok(Arc::new(CredentialsTable::new(
                served(&self.lake)?.lookup(&snapshot)?,
            ))),
            Some(LogicalNode::CallSummary { snapshot }) => Ok(Arc::new(CallSummary::new(
                served(&self.lake)?.table(&snapshot, None)?,
            ))),
            Some(LogicalNode::LookupJoin(_) | LogicalNode::CountDistinct { .. }) => {
                Err(DataFusionError::Internal(
                    "a trailhouse plan node where a table was expected".into(),
                ))
            }
        }
    }

    fn try_encode_table_provider(
        &self,
        table_ref: &TableReference,
        node: Arc<dyn TableProvider>,
        buf: &mut Vec<u8>,
    ) -> Result<()> {
        if let Some(table) = node.downcast_ref::<LakeTable>() {
            let snapshot = table
                .snapshot()
                .cloned()
                .ok_or_else(|| unknown_snapshot(&format!("table `{table_ref}`")))?;
            let only = table.restriction().map(|paths| paths.into_iter().collect());
            return write(&LogicalNode::Table { snapshot, only }, buf);
        }
        if let Some(table) = node.downcast_ref::<CredentialsTable>() {
            let snapshot = snapshot_of_lookup(table.lookup())?;
            return write(&LogicalNode::Credentials { snapshot }, buf);
        }
        if let Some(table) = node.downcast_ref::<CallSummary>() {
            let snapshot = table
                .snapshot()
                .cloned()
                .ok_or_else(|| unknown_snapshot(&format!("table `{table_ref}`")))?;
            return write(&LogicalNode::CallSummary { snapshot }, buf);
        }
        self.inner
            .try_encode_table_provider(table_ref, node, buf)
            .map_err(|e| {
                DataFusionError::NotImplemented(format!(
                    "table `{table_ref}` cannot be read on a cluster (only the lake's tables \
                     travel): {e}"
                ))
            })
    }

    fn try_decode_file_format(
        &self,
        buf: &[u8],
        ctx: &TaskContext,
    ) -> Result<Arc<dyn datafusion::datasource::file_format::FileFormatFactory>> {
        self.inner.try_decode_file_format(buf, ctx)
    }

    fn try_encode_file_format(
        &self,
        buf: &mut Vec<u8>,
        node: Arc<dyn datafusion::datasource::file_format::FileFormatFactory>,
    ) -> Result<()> {
        self.inner.try_encode_file_format(buf, node)
    }
}

/// The physical codec: the scheduler encodes with it, executors decode.
#[derive(Debug)]
pub struct LakePhysicalCodec {
    inner: BallistaPhysicalExtensionCodec,
    lake: Option<Arc<ServedLake>>,
}

impl LakePhysicalCodec {
    /// The codec of a node serving `lake`.
    pub fn serving(lake: Arc<ServedLake>) -> Self {
        Self {
            inner: BallistaPhysicalExtensionCodec::default(),
            lake: Some(lake),
        }
    }

    fn expr(&self, e: &Arc<dyn PhysicalExpr>) -> Result<Vec<u8>> {
        Ok(serialize_physical_expr(e, self)?.encode_to_vec())
    }

    fn parse(
        &self,
        bytes: &[u8],
        ctx: &TaskContext,
        schema: &Schema,
    ) -> Result<Arc<dyn PhysicalExpr>> {
        let node = protobuf::PhysicalExprNode::decode(bytes)
            .map_err(|e| DataFusionError::Internal(format!("an expression: {e}")))?;
        parse_physical_expr(&node, ctx, schema, self)
    }
}

impl PhysicalExtensionCodec for LakePhysicalCodec {
    fn try_decode(
        &self,
        buf: &[u8],
        inputs: &[Arc<dyn ExecutionPlan>],
        ctx: &TaskContext,
        converter: &dyn PhysicalProtoConverterExtension,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let Some(node) = read::<PhysicalNode>(buf)? else {
            return self.inner.try_decode(buf, inputs, ctx, converter);
        };
        match node {
            PhysicalNode::Recursive {
                name,
                distinct,
                schema,
            } => {
                let [static_term, recursive_term] = inputs else {
                    return Err(DataFusionError::Internal(
                        "RecursiveQueryExec has two inputs".into(),
                    ));
                };
                Ok(Arc::new(RecursiveQueryExec::try_new(
                    name,
                    decode_schema(&schema)?,
                    Arc::clone(static_term),
                    Arc::clone(recursive_term),
                    distinct,
                )?))
            }
            PhysicalNode::WorkTable { name, schema } => Ok(Arc::new(WorkTableExec::new(
                name,
                decode_schema(&schema)?,
                None,
            )?)),
            PhysicalNode::Credentials {
                snapshot,
                request,
                projection,
            } => Ok(Arc::new(CredentialsExec::new(
                served(&self.lake)?.lookup(&snapshot)?,
                request,
                projection,
            )?)),
            PhysicalNode::LookupJoin(parts) => {
                let [input] = inputs else {
                    return Err(DataFusionError::Internal(
                        "CredentialsLookupJoinExec has one input".into(),
                    ));
                };
                let schema = decode_schema(&parts.schema)?;
                let input_schema = input.schema();
                let over_input = |e: &Vec<u8>| self.parse(e, ctx, &input_schema);
                let step = Step {
                    key: over_input(&parts.key)?,
                    lo: parts.lo.as_ref().map(over_input).transpose()?,
                    hi: parts.hi.as_ref().map(over_input).transpose()?,
                    condition: parts
                        .condition
                        .as_ref()
                        .map(|e| self.parse(e, ctx, &schema))
                        .transpose()?,
                    left: parts.left,
                    credentials_first: parts.credentials_first,
                    lookup: served(&self.lake)?.lookup(&parts.snapshot)?,
                    projection: parts.projection,
                    schema,
                };
                Ok(Arc::new(LookupJoinExec::new(
                    Arc::clone(input),
                    Arc::new(step),
                )))
            }
            PhysicalNode::CountDistinct { name } => {
                let [input] = inputs else {
                    return Err(DataFusionError::Internal(
                        "CountDistinctExec has one input".into(),
                    ));
                };
                Ok(Arc::new(CountDistinctExec::new(Arc::clone(input), &name)))
            }
        }
    }

    fn try_encode(
        &self,
        node: Arc<dyn ExecutionPlan>,
        buf: &mut Vec<u8>,
        converter: &dyn PhysicalProtoConverterExtension,
    ) -> Result<()> {
        // Only ever in one stage: a session on a cluster plans a recursive query without
        // repartitioning (see `Session::dataframe`), so its work table stays beside it.
        if let Some(recursive) = node.downcast_ref::<RecursiveQueryExec>() {
            return write(
                &PhysicalNode::Recursive {
                    name: recursive.name().to_string(),
                    distinct: recursive.is_distinct(),
                    schema: encode_schema(&recursive.schema())?,
                },
                buf,
            );
        }
        if let Some(work) = node.downcast_ref::<WorkTableExec>() {
            return write(
                &PhysicalNode::WorkTable {
                    name: work.name().to_string(),
                    schema: encode_schema(&work.schema())?,
                },
                buf,
            );
        }
        if let Some(scan) = node.downcast_ref::<CredentialsExec>() {
            return write(
                &PhysicalNode::Credentials {
                    snapshot: snapshot_of_lookup(&scan.lookup)?,
                    request: scan.request.clone(),
                    projection: scan.projection.clone(),
                },
                buf,
            );
        }
        if let Some(count) = node.downcast_ref::<CountDistinctExec>() {
            let name = count.name().to_string();
            return write(&PhysicalNode::CountDistinct { name }, buf);
        }
        if let Some(join) = node.downcast_ref::<LookupJoinExec>() {
            let step = &join.step;
            let schema = encode_schema(&step.schema)?;
            return write(
                &PhysicalNode::LookupJoin(JoinParts::new(
                    &step.lookup,
                    [
                        Some(&step.key),
                        step.lo.as_ref(),
                        step.hi.as_ref(),
                        step.condition.as_ref(),
                    ],
                    step.left,
                    step.credentials_first,
                    &step.projection,
                    schema,
                    |e| self.expr(e),
                )?),
                buf,
            );
        }
        self.inner.try_encode(node, buf, converter)
    }
}
