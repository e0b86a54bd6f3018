//! What the crate's tests share.

use datafusion::prelude::SessionContext;

/// The plan DataFusion gives `sql` in `ctx` (`EXPLAIN`), as the text it prints.
pub async fn explained(ctx: &SessionContext, sql: &str) -> String {
    let plan = ctx
        .sql(&format!("EXPLAIN {sql}"))
        .await
        .expect("plan")
        .collect()
        .await
        .expect("explain");
    arrow::util::pretty::pretty_format_batches(&plan)
        .expect("format")
        .to_string()
}
