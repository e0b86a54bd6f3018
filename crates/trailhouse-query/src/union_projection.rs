//! A physical optimizer rule: a projection over a union of file scans goes into each scan.
//!
//! The lake's scan is a union when a filter is settled by some files' bounds and not by others
//! (`crate::lake_table`): the files inside a query's window are read without it, those at its
//! edges with it. DataFusion moves a projection below a union only when it narrows the union's
//! columns, and a projection that extracts struct fields (`useridentity.arn`, four of them for
//! the actor) usually widens them; left above the union, every scan decodes all of
//! `useridentity`'s leaves instead of the few the query names. Pushed into each scan, the
//! Parquet source reads only those leaves, as it does when the scan is not a union.

use std::sync::Arc;

use datafusion::common::Result;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::datasource::source::DataSourceExec;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_optimizer::optimizer::PhysicalOptimizer;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::projection::ProjectionExec;
use datafusion::physical_plan::union::UnionExec;

/// The rule (see the module's documentation).
#[derive(Debug, Default)]
pub struct ProjectionIntoUnionedScans;

impl PhysicalOptimizerRule for ProjectionIntoUnionedScans {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        _config: &ConfigOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        plan.transform_down(|node| {
            let Some(projection) = node.downcast_ref::<ProjectionExec>() else {
                return Ok(Transformed::no(node));
            };
            let Some(union) = projection.input().downcast_ref::<UnionExec>() else {
                return Ok(Transformed::no(node));
            };
            if !union
                .inputs()
                .iter()
                .all(|scan| scan.downcast_ref::<DataSourceExec>().is_some())
            {
                return Ok(Transformed::no(node));
            }
            let scans = union
                .inputs()
                .iter()
                .map(|scan| {
                    let projected = ProjectionExec::try_new(
                        projection.expr().iter().cloned(),
                        Arc::clone(scan),
                    )?;
                    Ok(Arc::new(projected) as Arc<dyn ExecutionPlan>)
                })
                .collect::<Result<Vec<_>>>()?;
            Ok(Transformed::yes(UnionExec::try_new(scans)?))
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "ProjectionIntoUnionedScans"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// DataFusion's physical optimizer rules with [`ProjectionIntoUnionedScans`] before each of its
/// projection pushdowns, which then move the projections into the scans.
pub fn physical_rules() -> Vec<Arc<dyn PhysicalOptimizerRule + Send + Sync>> {
    let mut rules = Vec::new();
    for rule in PhysicalOptimizer::new().rules {
        if rule.name() == "ProjectionPushdown" {
            rules.push(Arc::new(ProjectionIntoUnionedScans)
                as Arc<dyn PhysicalOptimizerRule + Send + Sync>);
        }
        rules.push(rule);
    }
    rules
}
