//! `trailhouse cluster scheduler|executor`: the nodes of a DataFusion Ballista cluster serving
//! one lake (see `trailhouse_query::cluster`), for `sql`, `run` and `report` with `--cluster`.

use std::net::{SocketAddr, ToSocketAddrs};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, anyhow};
use ballista_executor::executor_process::{ExecutorProcessConfig, start_executor_process};
use ballista_scheduler::cluster::BallistaCluster;
use ballista_scheduler::config::SchedulerConfig;
use ballista_scheduler::scheduler_process::start_server;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use trailhouse_lake::Lake;
use trailhouse_query::cluster::{DEFAULT_PORT, LakeLogicalCodec, LakePhysicalCodec, ServedLake};
use trailhouse_query::local_store::register_lake_store;

use crate::cli::{ClusterCommand, ExecutorArgs, SchedulerArgs};

pub async fn run(lake: &Lake, command: ClusterCommand) -> anyhow::Result<ExitCode> {
    // A node runs unattended: what goes wrong in it (a task that fails, an executor lost) is
    // in its log, on standard error (RUST_LOG sets the level; `info` follows each job). The
    // scheduler's rendering of a finished stage's metrics for its own log is left out: it
    // complains of plans whose operators count their metrics differently, ours among them.
    env_logger::Builder::from_env(
        env_logger::Env::default().default_filter_or("warn,ballista_scheduler::display=off"),
    )
    .init();
    let memory = match &command {
        ClusterCommand::Scheduler(a) => a.memory.options(),
        ClusterCommand::Executor(a) => a.memory.options(),
    };
    let served = ServedLake::open(lake.clone(), memory)
        .await
        .with_context(|| format!("cannot serve the lake at `{}`", lake.root().display()))?;
    match command {
        ClusterCommand::Scheduler(a) => scheduler(served, a).await,
        ClusterCommand::Executor(a) => executor(served, a).await,
    }
}

/// Seconds between an executor's heartbeats to its scheduler.
const HEARTBEAT_SECONDS: u64 = 5;

async fn scheduler(served: Arc<ServedLake>, args: SchedulerArgs) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(
        args.executor_timeout >= 2 * HEARTBEAT_SECONDS,
        "--executor-timeout {}: at least {} (executors send a heartbeat every {HEARTBEAT_SECONDS} s, \
         and one late heartbeat must not lose an executor)",
        args.executor_timeout,
        2 * HEARTBEAT_SECONDS
    );
    let bind = resolve(&args.bind, DEFAULT_PORT)?;
    let builder = Arc::clone(&served);
    let mut config = SchedulerConfig {
        bind_host: bind.ip().to_string(),
        bind_port: bind.port(),
        external_host: args
            .external_host
            .clone()
            .unwrap_or_else(|| bind.ip().to_string()),
        override_logical_codec: Some(Arc::new(LakeLogicalCodec::serving(Arc::clone(&served)))),
        override_physical_codec: Some(Arc::new(LakePhysicalCodec::serving(Arc::clone(&served)))),
        ..SchedulerConfig::default()
    }
    .with_override_session_builder(Arc::new(move |config| builder.session_state(config)));
    config.executor_timeout_seconds = args.executor_timeout;
    config.no_executors_grace_period_seconds = args.executor_timeout;
    let cluster = BallistaCluster::new_from_config(&config)
        .await
        .map_err(|e| anyhow!("cannot start the scheduler: {e}"))?;
    eprintln!(
        "scheduler for the lake at `{}` listening on df://{bind}",
        served.lake().root().display()
    );
    start_server(cluster, bind, Arc::new(config))
        .await
        .map_err(|e| anyhow!("scheduler on {bind}: {e}"))?;
    Ok(ExitCode::SUCCESS)
}

async fn executor(served: Arc<ServedLake>, args: ExecutorArgs) -> anyhow::Result<ExitCode> {
    let scheduler = resolve(
        args.scheduler
            .strip_prefix("df://")
            .unwrap_or(&args.scheduler),
        DEFAULT_PORT,
    )?;
    let bind = resolve(&args.bind, 50051)?;
    let work_dir = match &args.work_dir {
        Some(dir) => dir.clone(),
        None => std::env::temp_dir().join(format!("trailhouse-executor-{}", bind.port())),
    };
    std::fs::create_dir_all(&work_dir)
        .with_context(|| format!("cannot create the work directory `{}`", work_dir.display()))?;
    let temp = work_dir.clone();
    let lake = Arc::clone(&served);
    let config = ExecutorProcessConfig {
        bind_host: bind.ip().to_string(),
        external_host: args.external_host.clone(),
        port: bind.port(),
        grpc_port: args.grpc_port.unwrap_or(bind.port().saturating_add(1)),
        scheduler_host: scheduler.ip().to_string(),
        scheduler_port: scheduler.port(),
        scheduler_connect_timeout_seconds: args.connect_timeout,
        vcores: args.concurrency,
        work_dir: Some(work_dir.display().to_string()),
        // Heartbeats often enough that a scheduler sees a lost executor within its timeout.
        executor_heartbeat_interval_seconds: HEARTBEAT_SECONDS,
        memory_pool_size: Some(args.memory.bytes()),
        override_function_registry: Some(Arc::new(served.functions())),
        override_logical_codec: Some(Arc::new(LakeLogicalCodec::serving(Arc::clone(&served)))),
        override_physical_codec: Some(Arc::new(LakePhysicalCodec::serving(Arc::clone(&served)))),
        // Spill files in the work directory; the lake read through the store a session reads
        // it through (its S3 client, or a local lake's ranges read in place).
        override_runtime_producer: Some(Arc::new(move |_| {
            let runtime = RuntimeEnvBuilder::new()
                .with_temp_file_path(temp.clone())
                .build()?;
            register_lake_store(&runtime, lake.lake());
            Ok(Arc::new(runtime))
        })),
        ..ExecutorProcessConfig::default()
    };
    eprintln!(
        "executor for the lake at `{}` on {bind}, scheduler df://{scheduler}",
        served.lake().root().display()
    );
    start_executor_process(Arc::new(config))
        .await
        .map_err(|e| anyhow!("executor on {bind}: {e}"))?;
    Ok(ExitCode::SUCCESS)
}

/// `host:port`, `host` (with `default_port`) or `:port` (all interfaces), resolved.
fn resolve(address: &str, default_port: u16) -> anyhow::Result<SocketAddr> {
    let with_port = if address
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
    {
        address.to_string()
    } else {
        format!("{address}:{default_port}")
    };
    let with_host = match with_port.strip_prefix(':') {
        Some(port) => format!("0.0.0.0:{port}"),
        None => with_port,
    };
    with_host
        .to_socket_addrs()
        .with_context(|| format!("`{address}` is not an address (HOST:PORT)"))?
        .find(SocketAddr::is_ipv4)
        .or_else(|| with_host.to_socket_addrs().ok()?.next())
        .ok_or_else(|| anyhow!("`{address}` resolves to no address"))
}

#[cfg(test)]
mod tests {
    use super::resolve;

    #[test]
    fn addresses_resolve_with_their_defaults() {
        assert_eq!(
            resolve("127.0.0.1:7000", 1).expect("full").to_string(),
            "127.0.0.1:7000"
        );
        assert_eq!(
            resolve("127.0.0.1", 50050).expect("no port").to_string(),
            "127.0.0.1:50050"
        );
        assert_eq!(
            resolve(":7001", 1).expect("any").to_string(),
            "0.0.0.0:7001"
        );
        assert_eq!(
            resolve("localhost:7002", 1).expect("name").to_string(),
            "127.0.0.1:7002"
        );
        assert!(resolve("no such host!:1", 1).is_err());
    }
}
