//! The principals and source IPs across every control's findings, for the report's charts: each
//! control's rows (principal, source IP, weight) are fed to one aggregate as the controls run,
//! so the totals are exact without holding any control's rows.

use std::sync::{Arc, LazyLock};

use arrow::array::{Array, AsArray};
use arrow::datatypes::{DataType, Field, Int64Type, Schema, SchemaRef};
use datafusion::functions_aggregate::expr_fn::{grouping, sum};
use datafusion::logical_expr::{Expr, GroupingSet, col, lit, when};
use datafusion::prelude::{DataFrame, SessionContext};
use futures::StreamExt;

use super::{Count, top};
use crate::error::QueryError;

static SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        Field::new("principal", DataType::Utf8, true),
        // Whether the control's query has a principal column at all.
        Field::new("named", DataType::Boolean, false),
        Field::new("sourceipaddress", DataType::Utf8, true),
        Field::new("weight", DataType::Int64, true),
    ]))
});

/// The rows every control sends.
pub fn schema() -> SchemaRef {
    Arc::clone(&SCHEMA)
}

/// The totals over the rows of table `rows` (of [`schema`]): principals and source IPs by
/// summed weight, the top ones of each.
pub async fn totals(
    ctx: &SessionContext,
    rows: Arc<dyn datafusion::catalog::TableProvider>,
) -> Result<(Vec<Count>, Vec<Count>), QueryError> {
    let principal = when(col("named"), coalesce_unknown(col("principal")))
        .end()
        .map_err(QueryError::from)?;
    let frame: DataFrame = ctx
        .read_table(rows)?
        .select(vec![
            principal.alias("p"),
            col("sourceipaddress").alias("ip"),
            col("weight").alias("w"),
        ])?
        .aggregate(
            vec![Expr::GroupingSet(GroupingSet::GroupingSets(vec![
                vec![col("p")],
                vec![col("ip")],
            ]))],
            vec![sum(col("w")).alias("n"), grouping(col("p")).alias("gp")],
        )?;
    let mut principals = Vec::new();
    let mut ips = Vec::new();
    let mut stream = frame.execute_stream().await?;
    while let Some(batch) = stream.next().await {
        let batch = batch?;
        let column = |name: &str, to: &DataType| {
            batch
                .column_by_name(name)
                .map(|c| arrow::compute::cast(c, to))
                .transpose()
        };
        let (Some(p), Some(ip), Some(n), Some(gp)) = (
            column("p", &DataType::Utf8)?,
            column("ip", &DataType::Utf8)?,
            column("n", &DataType::Int64)?,
            column("gp", &DataType::Int64)?,
        ) else {
            continue;
        };
        let (p, ip) = (p.as_string::<i32>(), ip.as_string::<i32>());
        let (n, gp) = (n.as_primitive::<Int64Type>(), gp.as_primitive::<Int64Type>());
        for i in 0..batch.num_rows() {
            let count = if n.is_valid(i) { n.value(i).max(0) as u64 } else { 0 };
            let (values, text) = if gp.is_valid(i) && gp.value(i) == 0 {
                (&mut principals, p)
            } else {
                (&mut ips, ip)
            };
            if text.is_valid(i) {
                values.push((text.value(i).to_string(), count));
                if values.len() >= super::TOP * 8 {
                    *values = top(std::mem::take(values))
                        .into_iter()
                        .map(|c| (c.value, c.count))
                        .collect();
                }
            }
        }
    }
    Ok((top(principals), top(ips)))
}

fn coalesce_unknown(e: Expr) -> Expr {
    datafusion::functions::core::expr_fn::coalesce(vec![e, lit("(unknown)")])
}
