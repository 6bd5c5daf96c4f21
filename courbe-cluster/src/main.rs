//! `courbe-node`: one node of a Courbe cluster (docs/SCALE-OUT.md).
//!
//! - `courbe-node write --shard S --dir D ...`: takes shard S (waiting for its current writer's
//!   lease to end), then ingests native CSV from standard input (`meter_id,ts,value_w[,..]`),
//!   logging each batch to object storage before acknowledging it, with a checkpoint every
//!   `--checkpoint-every` batches and at the end; rows of other shards are refused and counted.
//! - `courbe-node restore --shard S --dir D ...`: rebuilds shard S's store in D from object
//!   storage (the last checkpoint, plus the log after it with `--with-log`), which
//!   `courbe --data D serve` then serves.
//! - `courbe-node read --shards 0,2 --dir D --governance G --listen ADDR --secret-file F ...`:
//!   opens ranged readers of the shards named and answers the internal routes (partial sums
//!   for a router) for their meters, within one byte bound shared by all of them.
//!   It registers itself in etcd (`<prefix>/readers/<lease>`: `--advertise` URL, its shards,
//!   the shard count) under a lease of `--lease-ttl-s`, deleted when it exits on SIGINT or
//!   SIGTERM, lapsing when it dies.
//! - `courbe-node route --governance G --listen ADDR --secret-file F [--readers URL,URL] ...`:
//!   serves the fleet routes (`/v1/fleet/curve`, `energy`, `offers`, `/v1/aggregates`) as one
//!   node does, fanned out to the readers and merged, and a meter's read routes (curve,
//!   energy, peak, index, summary, export, compare, cost, estimate, offers) from a reader
//!   holding its shard. The readers are those registered in etcd (listed every
//!   `--refresh-ms`, each checked before use), or the fixed `--readers` list when given.
//!   Several readers of a shard are asked in turn; one that fails (no answer, a timeout, a
//!   5xx) is replaced by the next for that question; 503 names the shard and every reader
//!   tried.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Args, Parser, Subcommand};
use courbe::engine::{Batch, Options};
use courbe::governance::{Governance, GovernanceConfig};
use courbe::ingest::{self, Format};
use courbe::question::Limits;
use courbe::Channel;
use courbe_cluster::layout::ShardLayout;
use courbe_cluster::objects::S3Config;
use courbe_cluster::{
    register, restore, shard_of, BlockCache, CacheOptions, Coordinator, Objects, RangedReader,
    ReaderNode, Registered, Registration, Router, Secret, ShardWriter, WriterOptions,
};

#[derive(Parser)]
#[command(
    name = "courbe-node",
    about = "One node of a Courbe cluster (docs/SCALE-OUT.md)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Args)]
struct Common {
    /// etcd endpoints, comma-separated.
    #[arg(long, default_value = "http://127.0.0.1:2379")]
    etcd: String,
    /// S3-compatible endpoint.
    #[arg(long, default_value = "http://127.0.0.1:9000")]
    s3: String,
    #[arg(long, default_value = "courbe")]
    bucket: String,
    #[arg(long, default_value = "us-east-1")]
    region: String,
    /// Access key (default: AWS_ACCESS_KEY_ID).
    #[arg(long, env = "AWS_ACCESS_KEY_ID")]
    access_key: String,
    #[arg(long, env = "AWS_SECRET_ACCESS_KEY")]
    secret_key: String,
    /// Object and etcd key prefix.
    #[arg(long, default_value = "courbe")]
    prefix: String,
    /// The cluster's shard count (recorded in etcd by the first node; later ones read it).
    #[arg(long, default_value_t = 16)]
    shards: u32,
}

#[derive(Args)]
struct OneShard {
    #[command(flatten)]
    common: Common,
    #[arg(long)]
    shard: u32,
    /// The local store directory (emptied by `write`).
    #[arg(long)]
    dir: PathBuf,
}

#[derive(Args)]
struct Serving {
    /// The address served.
    #[arg(long)]
    listen: std::net::SocketAddr,
    /// The file holding the cluster's internal secret (at least 16 printable characters);
    /// COURBE_INTERNAL_SECRET instead when absent.
    #[arg(long)]
    secret_file: Option<PathBuf>,
    /// The governance directory (tokens, grants, consent, groups, releases, calendars,
    /// prices, contracts): the same on every node (the router decides access with its own,
    /// a reader writes answers with its own).
    #[arg(long)]
    governance: PathBuf,
}

impl Serving {
    fn secret(&self) -> Result<Secret, String> {
        match &self.secret_file {
            Some(path) => Secret::from_file(path).map_err(|e| e.to_string()),
            None => Secret::new(&std::env::var("COURBE_INTERNAL_SECRET").map_err(|_| {
                "no internal secret: --secret-file or COURBE_INTERNAL_SECRET".to_string()
            })?)
            .map_err(|e| e.to_string()),
        }
    }

    fn governance(&self) -> Result<Arc<Governance>, String> {
        Governance::open(&self.governance, GovernanceConfig::default())
            .map(Arc::new)
            .map_err(|e| format!("{}: {e}", self.governance.display()))
    }
}

#[derive(Subcommand)]
enum Command {
    /// Takes --shard (waiting for its writer's lease to end) and ingests native CSV from
    /// standard input, each batch logged to object storage before it is acknowledged.
    Write {
        #[command(flatten)]
        one: OneShard,
        /// This node's name (the leader key's value).
        #[arg(long, default_value = "node")]
        node: String,
        #[arg(long, default_value_t = 10_000)]
        batch_rows: usize,
        #[arg(long, default_value_t = 100)]
        checkpoint_every: usize,
        #[arg(long, default_value_t = 5)]
        lease_ttl_s: i64,
    },
    /// Rebuilds --shard's store in --dir from object storage, for `courbe --data D serve`.
    Restore {
        #[command(flatten)]
        one: OneShard,
        #[arg(long)]
        with_log: bool,
    },
    /// Serves the internal routes for --read-shards, and registers in etcd under a lease
    /// (`<prefix>/readers/<lease id>`: --advertise, the shards, the shard count), deleted on
    /// SIGINT or SIGTERM, lapsing --lease-ttl-s after the reader dies.
    Read {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        serving: Serving,
        /// The shards read, comma-separated.
        #[arg(long = "read-shards", value_delimiter = ',')]
        read_shards: Vec<u32>,
        /// The directory of the ranged readers' sparse files (one folder per shard, emptied).
        #[arg(long)]
        dir: PathBuf,
        /// Most bytes of blocks held, all the shards read together (least recently read
        /// chunks dropped first, whichever shard they belong to).
        #[arg(long, default_value_t = 1 << 30)]
        bound_bytes: u64,
        /// The base URL routers call, registered in etcd (`<prefix>/readers/<lease>`); by
        /// default `http://` and the --listen address, which must then not be 0.0.0.0 or [::].
        #[arg(long)]
        advertise: Option<String>,
        /// TTL of the registration's etcd lease, seconds: the key goes this long after the
        /// reader dies or is cut from etcd (at once when it exits on SIGINT or SIGTERM).
        #[arg(long, default_value_t = 10)]
        lease_ttl_s: i64,
    },
    /// Serves the fleet routes and a meter's read routes from the readers registered in etcd
    /// (checked before use, listed again every --refresh-ms), or from the fixed --readers list;
    /// a shard's readers are asked in turn, the next one when one fails (no answer, a timeout,
    /// a 5xx); 503 names the shard and every reader tried.
    Route {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        serving: Serving,
        /// A fixed list of readers' base URLs, comma-separated, used instead of the readers
        /// registered in etcd (which are then not looked at).
        #[arg(long, value_delimiter = ',')]
        readers: Vec<String>,
        /// How often the registered readers are listed again, milliseconds (without --readers).
        #[arg(long, default_value_t = 1000)]
        refresh_ms: u64,
        /// Longest wait for a reader's answer, seconds.
        #[arg(long, default_value_t = 30)]
        reader_timeout_s: u64,
    },
}

async fn connect(one: &OneShard) -> Result<(Coordinator, Objects, ShardLayout, u32), String> {
    let (coord, objects, shards) = cluster(&one.common).await?;
    if one.shard >= shards {
        return Err(format!(
            "shard {} is not below the shard count {shards}",
            one.shard
        ));
    }
    let c = &one.common;
    let layout = ShardLayout::new(&c.prefix, &format!("/{}", c.prefix), one.shard);
    Ok((coord, objects, layout, shards))
}

async fn cluster(c: &Common) -> Result<(Coordinator, Objects, u32), String> {
    let endpoints: Vec<String> = c.etcd.split(',').map(str::to_owned).collect();
    let coord = Coordinator::connect(&endpoints, &format!("/{}", c.prefix))
        .await
        .map_err(|e| e.to_string())?;
    let shards = coord
        .shard_count(c.shards)
        .await
        .map_err(|e| e.to_string())?;
    let objects = Objects::s3(&S3Config {
        endpoint: c.s3.clone(),
        bucket: c.bucket.clone(),
        region: c.region.clone(),
        access_key: c.access_key.clone(),
        secret_key: c.secret_key.clone(),
        allow_http: c.s3.starts_with("http://"),
    })
    .map_err(|e| e.to_string())?;
    Ok((coord, objects, shards))
}

/// Serves until SIGINT or SIGTERM; then deletes the reader's registration, if any.
async fn serve_forever(
    running: courbe_cluster::fanout::Running,
    what: &str,
    registered: Option<Registered>,
) -> Result<(), String> {
    eprintln!("{what} on {}", running.url());
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| e.to_string())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    drop(running);
    if let Some(r) = registered {
        r.leave().await.map_err(|e| e.to_string())?;
    }
    Ok(())
}

async fn run(cli: Cli) -> Result<(), String> {
    match cli.command {
        Command::Write {
            one,
            node,
            batch_rows,
            checkpoint_every,
            lease_ttl_s,
        } => {
            let (coord, objects, layout, shards) = connect(&one).await?;
            let common = &one;
            let mut options = WriterOptions::new(&node);
            options.lease_ttl_s = lease_ttl_s;
            let (writer, took) =
                ShardWriter::take_over(&coord, &objects, layout, &common.dir, options)
                    .await
                    .map_err(|e| e.to_string())?;
            eprintln!(
                "shard {}: epoch {}, from {:?}, {} segments fetched, {} logs replayed; bucket \
                 versioning {:?}, {} old versions deleted",
                common.shard,
                took.epoch,
                took.from,
                took.segments_fetched,
                took.logs_replayed,
                took.versioning,
                took.versions_deleted
            );
            let mut input = Vec::new();
            std::io::Read::read_to_end(&mut std::io::stdin(), &mut input)
                .map_err(|e| e.to_string())?;
            let parsed = ingest::parse(&input, Format::Csv, Channel::CONSUMPTION)
                .map_err(|e| e.to_string())?;
            let started = Instant::now();
            let (mut acked, mut refused, mut batches) = (0usize, 0usize, 0usize);
            for rows in parsed.rows.chunks(batch_rows.max(1)) {
                let mut batch = Batch::new();
                for (meter, channel, point) in rows {
                    if shard_of(meter, shards) != common.shard {
                        refused += 1;
                        continue;
                    }
                    batch
                        .push(meter, *channel, *point)
                        .map_err(|e| format!("{meter}: {}", e.0))?;
                }
                writer.ingest(&batch).await.map_err(|e| e.to_string())?;
                acked += batch.len();
                batches += 1;
                if batches % checkpoint_every.max(1) == 0 {
                    writer.checkpoint().await.map_err(|e| e.to_string())?;
                }
            }
            writer.close().await.map_err(|e| e.to_string())?;
            let s = started.elapsed().as_secs_f64();
            eprintln!(
                "{acked} points acknowledged in {batches} batches, {s:.2} s ({:.0} points/s); \
                 {refused} rows of other shards refused; {} rejected lines; object store: {:?}",
                acked as f64 / s.max(1e-9),
                parsed.rejected.len(),
                objects.traffic()
            );
            Ok(())
        }
        Command::Restore { one, with_log } => {
            let (coord, objects, layout, _) = connect(&one).await?;
            let common = &one;
            let started = Instant::now();
            let r = restore(
                &coord,
                &objects,
                &layout,
                &common.dir,
                Options::default(),
                with_log,
            )
            .await
            .map_err(|e| e.to_string())?;
            let stats = r.store.stats();
            eprintln!(
                "shard {}: {} meters, {} points, {} segments; {} fetched, {} logs replayed, \
                 {:.3} s; object store: {:?}",
                common.shard,
                stats.meters,
                stats.points,
                stats.segments,
                r.fetched,
                r.replayed,
                started.elapsed().as_secs_f64(),
                r.traffic
            );
            Ok(())
        }
        Command::Read {
            common,
            serving,
            read_shards,
            dir,
            bound_bytes,
            advertise,
            lease_ttl_s,
        } => {
            let url = match advertise {
                Some(url) => url.trim_end_matches('/').to_owned(),
                None if serving.listen.ip().is_unspecified() => {
                    return Err(format!(
                        "--listen {} is no address to call: give --advertise URL",
                        serving.listen
                    ))
                }
                None => format!("http://{}", serving.listen),
            };
            let held = read_shards.clone();
            let (coord, objects, shard_count) = cluster(&common).await?;
            let secret = serving.secret()?;
            let gov = serving.governance()?;
            let cache =
                BlockCache::new(CacheOptions::new(bound_bytes)).map_err(|e| e.to_string())?;
            let mut shards = Vec::new();
            for s in read_shards {
                let layout = ShardLayout::new(&common.prefix, &format!("/{}", common.prefix), s);
                let reader = RangedReader::open_in(
                    &coord,
                    &objects,
                    &layout,
                    &dir.join(format!("shard-{s}")),
                    Options::default(),
                    &cache,
                )
                .await
                .map_err(|e| format!("shard {s}: {e}"))?;
                shards.push((s, reader));
            }
            let node =
                ReaderNode::new(shard_count, shards, gov, secret).map_err(|e| e.to_string())?;
            let listener = tokio::net::TcpListener::bind(serving.listen)
                .await
                .map_err(|e| format!("{}: {e}", serving.listen))?;
            let running = node.serve(listener).map_err(|e| e.to_string())?;
            let registration = Registration {
                url,
                shards: held,
                shard_count,
            };
            let registered = register(&coord, &registration, lease_ttl_s)
                .await
                .map_err(|e| e.to_string())?;
            eprintln!("registered as {} ({})", registered.key(), registration.url);
            serve_forever(running, "reader", Some(registered)).await
        }
        Command::Route {
            common,
            serving,
            readers,
            refresh_ms,
            reader_timeout_s,
        } => {
            let (coord, _, shard_count) = cluster(&common).await?;
            let secret = serving.secret()?;
            let gov = serving.governance()?;
            let timeout = Duration::from_secs(reader_timeout_s);
            let router = if readers.is_empty() {
                Router::discover(
                    coord,
                    shard_count,
                    secret,
                    gov,
                    Limits::default(),
                    timeout,
                    Duration::from_millis(refresh_ms.max(1)),
                )
                .await
            } else {
                Router::connect(
                    &readers,
                    shard_count,
                    secret,
                    gov,
                    Limits::default(),
                    timeout,
                )
                .await
            }
            .map_err(|e| e.to_string())?;
            let listener = tokio::net::TcpListener::bind(serving.listen)
                .await
                .map_err(|e| format!("{}: {e}", serving.listen))?;
            serve_forever(
                router.serve(listener).map_err(|e| e.to_string())?,
                "router",
                None,
            )
            .await
        }
    }
}

fn main() {
    let cli = Cli::parse();
    courbe_server::cli::init_logging();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("courbe-node: {e}");
            std::process::exit(1);
        }
    };
    if let Err(e) = runtime.block_on(run(cli)) {
        eprintln!("courbe-node: {e}");
        std::process::exit(1);
    }
}
