//! The window's activity (events and errors per day, the busiest principals and source IPs)
//! and the state of the table a report read.

use std::collections::BTreeMap;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Int64Type};
use chrono::{DateTime, SecondsFormat, Utc};
use datafusion::common::ParamValues;
use futures::StreamExt;

use super::{Count, DayCount, ReportOptions, TOP, TableInfo, top};
use crate::error::QueryError;
use crate::saved::Window;
use crate::session::Session;

pub(super) async fn rows(
    session: &Session,
    sql: &str,
    params: Option<ParamValues>,
) -> Result<Vec<RecordBatch>, QueryError> {
    let mut df = session.dataframe(sql).await?;
    if let Some(p) = params {
        df = df.with_param_values(p)?;
    }
    Ok(df.collect().await?)
}

pub(super) fn int(batch: &RecordBatch, name: &str, row: usize) -> u64 {
    batch
        .column_by_name(name)
        .and_then(|c| cast(c, &DataType::Int64).ok())
        .map(|c| {
            let c = c.as_primitive::<Int64Type>();
            if c.is_valid(row) {
                c.value(row).max(0) as u64
            } else {
                0
            }
        })
        .unwrap_or(0)
}

pub(super) fn utf8_column(
    batch: &RecordBatch,
    name: &str,
) -> Result<Option<arrow::array::ArrayRef>, QueryError> {
    batch
        .column_by_name(name)
        .map(|c| cast(c, &DataType::Utf8))
        .transpose()
        .map_err(QueryError::from)
}

/// The window's activity in one scan: events and errors per day, and the busiest principals
/// and source IPs.
pub(super) async fn activity(
    session: &Session,
    window: Window,
) -> Result<(Vec<DayCount>, Vec<Count>, Vec<Count>), QueryError> {
    let sql = "SELECT day, principal, sourceipaddress, count(*) AS events, \
                      count(errorcode) AS errors, \
                      grouping(day) AS not_by_day, grouping(principal) AS not_by_principal \
               FROM (SELECT CAST(day AS VARCHAR) AS day, actor(useridentity) AS principal, \
                            sourceipaddress, errorcode \
                     FROM cloudtrail WHERE eventtime >= $since AND eventtime < $until) \
               GROUP BY GROUPING SETS ((day), (principal), (sourceipaddress))";
    let mut days = BTreeMap::new();
    let mut principals: Vec<(String, u64)> = Vec::new();
    let mut ips: Vec<(String, u64)> = Vec::new();
    let keep = |list: &mut Vec<(String, u64)>, value: &str, n: u64| {
        list.push((value.to_string(), n));
        if list.len() >= TOP * 8 {
            *list = top(std::mem::take(list))
                .into_iter()
                .map(|c| (c.value, c.count))
                .collect();
        }
    };
    let mut stream = session
        .dataframe(sql)
        .await?
        .with_param_values(ParamValues::from(window.params()))?
        .execute_stream()
        .await?;
    while let Some(b) = stream.next().await {
        let b = b?;
        let (Some(d), Some(p), Some(ip)) = (
            utf8_column(&b, "day")?,
            utf8_column(&b, "principal")?,
            utf8_column(&b, "sourceipaddress")?,
        ) else {
            continue;
        };
        let (d, p, ip) = (
            d.as_string::<i32>(),
            p.as_string::<i32>(),
            ip.as_string::<i32>(),
        );
        let ints = |name: &str| -> Result<Vec<u64>, QueryError> {
            let c = b.column_by_name(name).ok_or_else(|| {
                QueryError::Io(std::io::Error::other(format!("activity: no column {name}")))
            })?;
            let c = cast(c, &DataType::Int64)?;
            let c = c.as_primitive::<Int64Type>();
            Ok((0..c.len())
                .map(|i| {
                    if c.is_valid(i) {
                        c.value(i).max(0) as u64
                    } else {
                        0
                    }
                })
                .collect())
        };
        let (events, errors) = (ints("events")?, ints("errors")?);
        let (not_by_day, not_by_principal) = (ints("not_by_day")?, ints("not_by_principal")?);
        for i in 0..b.num_rows() {
            let n = events[i];
            if not_by_day[i] == 0 {
                days.insert(d.value(i).to_string(), (n, errors[i]));
            } else if not_by_principal[i] == 0 {
                let name = if p.is_valid(i) {
                    p.value(i)
                } else {
                    "(unknown)"
                };
                keep(&mut principals, name, n);
            } else if ip.is_valid(i) {
                keep(&mut ips, ip.value(i), n);
            }
        }
    }
    let days = days
        .into_iter()
        .map(|(day, (events, errors))| DayCount {
            day,
            events,
            errors,
        })
        .collect();
    Ok((days, top(principals), top(ips)))
}

pub(super) async fn table_info(
    session: &Session,
    opts: &ReportOptions,
) -> Result<TableInfo, QueryError> {
    let b = rows(
        session,
        "SELECT count(*) AS records, count(DISTINCT sourcefile) AS files FROM cloudtrail",
        None,
    )
    .await?;
    let (records, files) = b
        .first()
        .map_or((0, 0), |b| (int(b, "records", 0), int(b, "files", 0)));
    let quarantined = if session
        .context()
        .table_exist(trailhouse_lake::schema::QUARANTINE_TABLE_NAME)?
    {
        rows(session, "SELECT count(*) AS n FROM quarantine", None)
            .await?
            .first()
            .map_or(0, |b| int(b, "n", 0))
    } else {
        0
    };
    Ok(TableInfo {
        lake: opts.lake.clone(),
        version: session.table_version(),
        last_commit: session
            .last_commit_millis()
            .await
            .and_then(DateTime::<Utc>::from_timestamp_millis)
            .map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true)),
        files,
        records,
        records_in_window: 0,
        quarantined,
        integrity: None,
    })
}
