//! A table whose rows are handed to it batch by batch while a query over it runs: how one scan
//! of the lake feeds every control of a report, and how a control's matches feed the aggregate
//! that reduces them. The query reads the table once; the sender waits while the query is
//! behind (a bounded channel), so memory holds a few batches, not the rows.

use std::sync::{Arc, Mutex};

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use datafusion::catalog::streaming::StreamingTable;
use datafusion::common::{DataFusionError, Result};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::PartitionStream;
use futures::channel::mpsc;
use futures::{SinkExt, StreamExt};

/// Batches in flight between the sender and the query.
const CAPACITY: usize = 2;

/// The sending end.
#[derive(Clone)]
pub struct Sender {
    tx: mpsc::Sender<Result<RecordBatch>>,
}

impl Sender {
    /// Hands a batch to the query; `false` when the query no longer reads (it finished without
    /// needing the rest, or failed).
    pub async fn send(&mut self, batch: RecordBatch) -> bool {
        self.tx.send(Ok(batch)).await.is_ok()
    }

    /// Ends the query's input with an error.
    pub async fn fail(mut self, error: DataFusionError) {
        let _ = self.tx.send(Err(error)).await;
    }
}

/// A table of `schema` fed by the returned sender; the table's rows end when the sender is
/// dropped.
pub fn table(schema: SchemaRef) -> Result<(Arc<StreamingTable>, Sender)> {
    let (tx, rx) = mpsc::channel(CAPACITY);
    let partition = Arc::new(Feed {
        schema: Arc::clone(&schema),
        rx: Mutex::new(Some(rx)),
    });
    let table = StreamingTable::try_new(schema, vec![partition])?;
    Ok((Arc::new(table), Sender { tx }))
}

/// The one partition of the table.
#[derive(Debug)]
struct Feed {
    schema: SchemaRef,
    rx: Mutex<Option<mpsc::Receiver<Result<RecordBatch>>>>,
}

impl PartitionStream for Feed {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let rx = self.rx.lock().ok().and_then(|mut rx| rx.take());
        let stream = match rx {
            Some(rx) => rx.boxed(),
            None => futures::stream::once(async {
                Err(DataFusionError::Internal(
                    "a fed table is read once per query".into(),
                ))
            })
            .boxed(),
        };
        Box::pin(RecordBatchStreamAdapter::new(
            Arc::clone(&self.schema),
            stream,
        ))
    }
}
