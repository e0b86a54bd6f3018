//! `count(DISTINCT x)` of a string column over a whole input (no group keys), exactly, in
//! memory the pool bounds.
//!
//! A group-by on `x` (DataFusion's plan, and [`crate::distinct`]'s beside other counts) holds
//! each distinct value as a string in a hash table: over 20M event ids, 1.2 GB, spilled and
//! merged back under the default pool. [`CountDistinctExec`] holds a value in 16 bytes where it
//! can ([`keys`]: short values, and UUIDs such as event and request ids, by the bytes they
//! spell), collects each input partition on a task of its own, sorts and spills runs when the
//! pool is short, and merges the runs bucket by bucket at the end. The count is exact: no value
//! is ever stood for by a hash.

mod keys;

use std::cmp::Ordering;
use std::fmt;
use std::sync::Arc;

use arrow::array::{AsArray, Int64Array, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use async_trait::async_trait;
use datafusion::catalog::Session as CatalogSession;
use datafusion::common::runtime::SpawnedTask;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{DFSchema, DFSchemaRef, DataFusionError, Result};
use datafusion::execution::memory_pool::{MemoryConsumer, MemoryReservation};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::physical_planning_context::PhysicalPlanningContext;
use datafusion::logical_expr::{
    Expr, Extension, LogicalPlan, UserDefinedLogicalNode, UserDefinedLogicalNodeCore,
};
use datafusion::physical_expr::{EquivalenceProperties, Partitioning, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::metrics::{
    Count, ExecutionPlanMetricsSet, MetricBuilder, MetricsSet,
};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, ExecutionPlanProperties, PlanProperties,
};
use datafusion::physical_planner::{ExtensionPlanner, PhysicalPlanner};
use futures::StreamExt;

use keys::Keys;

/// Whether [`CountDistinct`] counts values of this type.
pub fn counts(data_type: &DataType) -> bool {
    matches!(
        data_type,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
    )
}

/// The number of distinct non-null values of its input's one column, as one row of one
/// column named `name`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CountDistinct {
    pub(crate) input: LogicalPlan,
    schema: DFSchemaRef,
}

impl CountDistinct {
    /// Counts the distinct values of `input`'s one column (a string), as `name`.
    pub fn new(input: LogicalPlan, name: &str) -> Result<Self> {
        let [field] = input.schema().fields().iter().collect::<Vec<_>>()[..] else {
            return Err(DataFusionError::Internal(
                "CountDistinct counts one column".into(),
            ));
        };
        if !counts(field.data_type()) {
            return Err(DataFusionError::Internal(format!(
                "CountDistinct counts strings, not {}",
                field.data_type()
            )));
        }
        let schema = Schema::new(vec![Field::new(name, DataType::Int64, false)]);
        Ok(Self {
            input,
            schema: Arc::new(DFSchema::try_from(schema)?),
        })
    }

    /// This node as a plan.
    pub fn plan(self) -> LogicalPlan {
        LogicalPlan::Extension(Extension {
            node: Arc::new(self),
        })
    }

    /// The name of its one column.
    pub fn name(&self) -> &str {
        self.schema.field(0).name()
    }
}

impl PartialOrd for CountDistinct {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        match self.name().partial_cmp(other.name()) {
            Some(Ordering::Equal) => self.input.partial_cmp(&other.input),
            order => order,
        }
    }
}

impl UserDefinedLogicalNodeCore for CountDistinct {
    fn name(&self) -> &str {
        "CountDistinct"
    }
    fn inputs(&self) -> Vec<&LogicalPlan> {
        vec![&self.input]
    }
    fn schema(&self) -> &DFSchemaRef {
        &self.schema
    }
    fn expressions(&self) -> Vec<Expr> {
        Vec::new()
    }
    fn fmt_for_explain(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "CountDistinct: {}", self.name())
    }
    fn with_exprs_and_inputs(&self, _: Vec<Expr>, inputs: Vec<LogicalPlan>) -> Result<Self> {
        let input = inputs
            .into_iter()
            .next()
            .ok_or_else(|| DataFusionError::Internal("CountDistinct has one input".into()))?;
        Self::new(input, self.name())
    }
}

/// Plans [`CountDistinct`] nodes.
#[derive(Debug, Default)]
pub struct CountDistinctPlanner;

#[async_trait]
impl ExtensionPlanner for CountDistinctPlanner {
    async fn plan_extension(
        &self,
        _planner: &dyn PhysicalPlanner,
        node: &dyn UserDefinedLogicalNode,
        _logical_inputs: &[&LogicalPlan],
        physical_inputs: &[Arc<dyn ExecutionPlan>],
        _session: &dyn CatalogSession,
        _planning_ctx: &PhysicalPlanningContext,
    ) -> Result<Option<Arc<dyn ExecutionPlan>>> {
        let Some(node) = node.as_any().downcast_ref::<CountDistinct>() else {
            return Ok(None);
        };
        let [input] = physical_inputs else {
            return Err(DataFusionError::Internal(
                "CountDistinct has one input".into(),
            ));
        };
        Ok(Some(Arc::new(CountDistinctExec::new(
            Arc::clone(input),
            node.name(),
        ))))
    }
}

/// Counts the distinct values of its input's one column over all its partitions: one row.
#[derive(Debug)]
pub struct CountDistinctExec {
    input: Arc<dyn ExecutionPlan>,
    schema: SchemaRef,
    properties: Arc<PlanProperties>,
    metrics: ExecutionPlanMetricsSet,
}

impl CountDistinctExec {
    pub fn new(input: Arc<dyn ExecutionPlan>, name: &str) -> Self {
        let schema = Arc::new(Schema::new(vec![Field::new(name, DataType::Int64, false)]));
        let properties = Arc::new(PlanProperties::new(
            EquivalenceProperties::new(Arc::clone(&schema)),
            Partitioning::UnknownPartitioning(1),
            EmissionType::Final,
            Boundedness::Bounded,
        ));
        Self {
            input,
            schema,
            properties,
            metrics: ExecutionPlanMetricsSet::new(),
        }
    }

    /// The name of its one column.
    pub fn name(&self) -> &str {
        self.schema.field(0).name()
    }
}

impl DisplayAs for CountDistinctExec {
    fn fmt_as(&self, _: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "CountDistinctExec: {}", self.name())
    }
}

impl ExecutionPlan for CountDistinctExec {
    fn name(&self) -> &str {
        "CountDistinctExec"
    }
    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }
    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }
    fn apply_expressions(
        &self,
        _: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }
    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }
    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let Some(input) = children.into_iter().next() else {
            return Err(DataFusionError::Internal(
                "CountDistinctExec has one input".into(),
            ));
        };
        Ok(Arc::new(CountDistinctExec::new(input, self.name())))
    }
    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        if partition != 0 {
            return Err(DataFusionError::Internal(format!(
                "CountDistinctExec has one partition, not {partition}"
            )));
        }
        let input = Arc::clone(&self.input);
        let schema = Arc::clone(&self.schema);
        let metrics = self.metrics.clone();
        let counted = async move {
            let partitions = input.output_partitioning().partition_count();
            let mut tasks = Vec::with_capacity(partitions);
            for p in 0..partitions {
                let stream = input.execute(p, Arc::clone(&context))?;
                let spills = Spills {
                    count: MetricBuilder::new(&metrics).spill_count(p),
                    bytes: MetricBuilder::new(&metrics).spilled_bytes(p),
                };
                tasks.push(SpawnedTask::spawn(collect(
                    stream,
                    Arc::clone(&context),
                    p,
                    spills,
                )));
            }
            let mut collected = Vec::with_capacity(partitions);
            for task in tasks {
                let joined = task
                    .join_unwind()
                    .await
                    .map_err(|e| DataFusionError::ExecutionJoin(Box::new(e)))?;
                collected.push(joined?);
            }
            // The pool's holds go when the count is done.
            let (collected, _held): (Vec<_>, Vec<_>) = collected.into_iter().unzip();
            let distinct = keys::count(collected, partitions).await?;
            let distinct = i64::try_from(distinct)
                .map_err(|e| DataFusionError::Execution(format!("count(DISTINCT …): {e}")))?;
            Ok(RecordBatch::try_new(
                Arc::clone(&schema),
                vec![Arc::new(Int64Array::from(vec![distinct]))],
            )?)
        };
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            Arc::clone(&self.schema),
            futures::stream::once(counted),
        )))
    }
}

/// What a partition's collector spilled.
struct Spills {
    count: Count,
    bytes: Count,
}

/// The values of one input partition, spilled as the pool requires, and the pool's hold on
/// those kept in memory (given back when the count is done).
async fn collect(
    mut stream: SendableRecordBatchStream,
    context: Arc<TaskContext>,
    partition: usize,
    spills: Spills,
) -> Result<(Keys, MemoryReservation)> {
    let reservation = MemoryConsumer::new(format!("CountDistinctExec[{partition}]"))
        .with_can_spill(true)
        .register(context.memory_pool());
    let mut keys = Keys::default();
    while let Some(batch) = stream.next().await {
        let batch = batch?;
        let column = batch.column(0);
        let mut insert = |value: Option<&str>| {
            if let Some(value) = value {
                keys.insert(value.as_bytes());
            }
        };
        match column.data_type() {
            DataType::Utf8 => column.as_string::<i32>().iter().for_each(&mut insert),
            DataType::LargeUtf8 => column.as_string::<i64>().iter().for_each(&mut insert),
            DataType::Utf8View => column.as_string_view().iter().for_each(&mut insert),
            other => {
                return Err(DataFusionError::Internal(format!(
                    "CountDistinctExec counts strings, not {other}"
                )));
            }
        }
        if reservation.try_resize(keys.size()).is_err() {
            // Repeats go first; what is left is spilled unless that freed half of it.
            let held = keys.size();
            keys.compact();
            let compacted = keys.size();
            if compacted > held / 2 || reservation.try_resize(compacted).is_err() {
                let file = context
                    .runtime_env()
                    .disk_manager
                    .create_tmp_file("count distinct")?;
                spills.bytes.add(keys.spill(file)?);
                spills.count.add(1);
                reservation.resize(keys.size());
            }
        }
    }
    // Sorted here, beside the other partitions' collectors: the count only merges.
    keys.compact();
    Ok((keys, reservation))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    use arrow::array::StringArray;
    use datafusion::datasource::memory::MemorySourceConfig;
    use datafusion::execution::memory_pool::GreedyMemoryPool;
    use datafusion::execution::runtime_env::RuntimeEnvBuilder;
    use datafusion::physical_plan::collect as run;

    /// `rows` values in two partitions, a value in three repeated, UUIDs, addresses, ARNs and
    /// nulls among them.
    fn partitions(rows: usize) -> (Vec<Vec<RecordBatch>>, SchemaRef, usize) {
        let schema = Arc::new(Schema::new(vec![Field::new("x", DataType::Utf8, true)]));
        let values: Vec<Option<String>> = (0..rows)
            .map(|i| {
                let v = i / 3 * 3;
                match i % 4 {
                    0 => Some(format!("{:08x}-c98a-4c65-9b6e-{:012x}", v, v * 7)),
                    1 => Some(format!("10.{}.{}.{}", v % 256, v / 256 % 256, v / 65536)),
                    2 => Some(format!("arn:aws:sts::123456789012:assumed-role/r/s-{v}")),
                    _ => None,
                }
            })
            .collect();
        let distinct = values.iter().flatten().collect::<HashSet<_>>().len();
        let batches: Vec<RecordBatch> = values
            .chunks(1_000)
            .map(|chunk| {
                let column = StringArray::from(chunk.to_vec());
                RecordBatch::try_new(Arc::clone(&schema), vec![Arc::new(column)])
            })
            .collect::<std::result::Result<_, _>>()
            .expect("batches");
        let (even, odd): (Vec<_>, Vec<_>) = batches
            .into_iter()
            .enumerate()
            .partition(|(i, _)| i % 2 == 0);
        let strip = |b: Vec<(usize, RecordBatch)>| b.into_iter().map(|(_, b)| b).collect();
        (vec![strip(even), strip(odd)], schema, distinct)
    }

    #[tokio::test]
    async fn counts_every_partition_exactly_and_spills_when_the_pool_is_short() -> Result<()> {
        let (partitions, schema, distinct) = partitions(120_000);
        for (pool, spills) in [(1 << 30, false), (1 << 20, true)] {
            let runtime = RuntimeEnvBuilder::new()
                .with_memory_pool(Arc::new(GreedyMemoryPool::new(pool)))
                .build_arc()?;
            let context = Arc::new(TaskContext::default().with_runtime(runtime));
            let input = MemorySourceConfig::try_new_exec(&partitions, Arc::clone(&schema), None)?;
            let exec = Arc::new(CountDistinctExec::new(input, "n"));
            let batches = run(Arc::clone(&exec) as _, context).await?;
            let counted = batches[0]
                .column(0)
                .as_primitive::<arrow::datatypes::Int64Type>();
            assert_eq!(counted.value(0), distinct as i64);
            let metrics = exec.metrics().expect("metrics");
            assert_eq!(metrics.spill_count().unwrap_or(0) > 0, spills, "{metrics}");
            assert_eq!(
                metrics.spilled_bytes().unwrap_or(0) > 0,
                spills,
                "{metrics}"
            );
        }
        Ok(())
    }
}
