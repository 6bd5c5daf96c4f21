//! Real servers on loopback for the cluster tests: etcd (the distribution's `etcd-server`,
//! binary `$COURBE_ETCD` or `/usr/bin/etcd`) in a child process, and `s3s-fs` (an S3 server
//! over a directory) served in this process. A missing etcd fails the test, never skips it.

#![allow(dead_code)]

pub mod versioned;

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use courbe_cluster::objects::S3Config;
use courbe_cluster::{Coordinator, Objects};

pub const ACCESS_KEY: &str = "courbe-test";
pub const SECRET_KEY: &str = "courbe-test-secret";
pub const BUCKET: &str = "courbe";

pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("a free loopback port");
    l.local_addr().expect("its address").port()
}

pub struct Etcd {
    binary: PathBuf,
    data: PathBuf,
    client_port: u16,
    peer_port: u16,
    child: Option<Child>,
}

impl Etcd {
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
    }

    fn spawn(&mut self) {
        let client = self.endpoint();
        let peer = format!("http://127.0.0.1:{}", self.peer_port);
        let child = Command::new(&self.binary)
            .args(["--name", "courbe-test", "--data-dir"])
            .arg(&self.data)
            .args(["--listen-client-urls", &client])
            .args(["--advertise-client-urls", &client])
            .args(["--listen-peer-urls", &peer])
            .args(["--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &format!("courbe-test={peer}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", self.binary.display()));
        self.child = Some(child);
    }

    /// Stops etcd (SIGKILL), as a partition from it would look to the nodes.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same data and ports, and waits until it answers.
    pub async fn restart(&mut self) {
        self.spawn();
        self.wait_ready().await;
    }

    async fn wait_ready(&self) {
        let until = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(c) = Coordinator::connect(&[self.endpoint()], "/ready").await {
                if c.shard_count(1).await.is_ok() {
                    return;
                }
            }
            assert!(Instant::now() < until, "etcd did not answer within 30 s");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        self.stop();
    }
}

pub struct Servers {
    pub etcd: Etcd,
    pub s3_endpoint: String,
    s3_task: tokio::task::JoinHandle<()>,
    pub dir: tempfile::TempDir,
}

impl Drop for Servers {
    fn drop(&mut self) {
        self.s3_task.abort();
    }
}

impl Servers {
    /// Starts both servers; panics (the test fails) when etcd is not installed.
    pub async fn start() -> Servers {
        Servers::start_with(None).await.0
    }

    /// The same with the S3 server keeping versions as a versioned bucket does (`versioned`),
    /// starting in `mode`; the handle sets its mode and attacks.
    pub async fn start_versioned(mode: versioned::Mode) -> (Servers, versioned::Versions) {
        let (servers, versions) = Servers::start_with(Some(mode)).await;
        (servers, versions.expect("a versioned bucket"))
    }

    async fn start_with(mode: Option<versioned::Mode>) -> (Servers, Option<versioned::Versions>) {
        let binary = std::env::var_os("COURBE_ETCD")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/usr/bin/etcd"));
        assert!(
            binary.exists(),
            "{} not found: install etcd-server (apt-get install etcd-server) or set COURBE_ETCD",
            binary.display()
        );
        let dir = tempfile::tempdir().expect("a temporary directory");
        let mut etcd = Etcd {
            binary,
            data: dir.path().join("etcd"),
            client_port: free_port(),
            peer_port: free_port(),
            child: None,
        };
        etcd.spawn();
        let root = dir.path().join("s3");
        std::fs::create_dir_all(root.join(BUCKET)).expect("the bucket's directory");
        let (s3_endpoint, s3_task, versions) = match mode {
            None => {
                let fs = s3s_fs::FileSystem::new(&root).expect("s3s-fs over a directory");
                let (endpoint, task) = serve_s3(fs).await;
                (endpoint, task, None)
            }
            Some(mode) => {
                let (fs, versions) = versioned::VersionedFs::new(&root, mode);
                let (endpoint, task) = serve_s3(fs).await;
                (endpoint, task, Some(versions))
            }
        };
        etcd.wait_ready().await;
        let servers = Servers {
            etcd,
            s3_endpoint,
            s3_task,
            dir,
        };
        (servers, versions)
    }

    pub fn objects(&self) -> Objects {
        Objects::s3(&S3Config {
            endpoint: self.s3_endpoint.clone(),
            bucket: BUCKET.into(),
            region: "us-east-1".into(),
            access_key: ACCESS_KEY.into(),
            secret_key: SECRET_KEY.into(),
            allow_http: true,
        })
        .expect("an S3 client")
    }

    pub async fn coordinator(&self) -> Coordinator {
        Coordinator::connect(&[self.etcd.endpoint()], "/courbe")
            .await
            .expect("etcd answers")
    }

    /// A fresh directory under the servers' temporary directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

/// An S3 server (`s3s-fs` over a directory holding bucket `courbe`) on a loopback port: its
/// endpoint and its task.
async fn serve_s3(fs: impl s3s::S3) -> (String, tokio::task::JoinHandle<()>) {
    let mut builder = s3s::service::S3ServiceBuilder::new(fs);
    builder.set_auth(s3s::auth::SimpleAuth::from_single(ACCESS_KEY, SECRET_KEY));
    let service = builder.build().into_shared();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a loopback port");
    let endpoint = format!("http://{}", listener.local_addr().expect("its address"));
    let task = tokio::spawn(async move {
        loop {
            let Ok((socket, _)) = listener.accept().await else {
                continue;
            };
            let _ = socket.set_nodelay(true);
            let service = service.clone();
            tokio::spawn(async move {
                let builder = hyper_util::server::conn::auto::Builder::new(
                    hyper_util::rt::TokioExecutor::new(),
                );
                let _ = builder
                    .serve_connection(hyper_util::rt::TokioIo::new(socket), service)
                    .await;
            });
        }
    });
    (endpoint, task)
}
