//! The demo's writer: an in-process task appending hash-chained audit
//! events, as Kubernaut's data-storage service would, and the [`Quiescer`]
//! that pauses it the way a writer Deployment is scaled down for a restore.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use lifeboat_postgres::ConnConfig;
use lifeboat_postgres::demo_data as fixture;
use tokio::task::JoinHandle;

use crate::error::Result;
use crate::postgres::conn_err;
use crate::quiesce::{BoxFuture, Quiescer};

/// How long [`Pause::stop`] waits for the writer to finish its current append.
const STOP_LIMIT: Duration = Duration::from_secs(30);

/// The running writer. Dropped without [`Writer::finish`] (a failed step,
/// Ctrl-C), it is told to stop, so it does not outlive the demo's cluster.
pub struct Writer {
    paused: Arc<AtomicBool>,
    idle: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    task: JoinHandle<u64>,
}

impl Writer {
    /// Connects to `conn` and starts appending two events every 50 ms (a
    /// failed append, e.g. while the restore replaces the table, is skipped).
    pub async fn start(conn: &ConnConfig) -> Result<Self> {
        let client = conn.connect().await.map_err(conn_err)?;
        let paused = Arc::new(AtomicBool::new(false));
        let idle = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let task = {
            let (paused, idle, stop) = (paused.clone(), idle.clone(), stop.clone());
            tokio::spawn(async move {
                let mut written = 0u64;
                while !stop.load(Ordering::SeqCst) {
                    if paused.load(Ordering::SeqCst) {
                        idle.store(true, Ordering::SeqCst);
                    } else if fixture::append_audit_events(&client, 2).await.is_ok() {
                        written += 2;
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                written
            })
        };
        Ok(Self {
            paused,
            idle,
            stop,
            task,
        })
    }

    /// The quiescer that pauses this writer.
    pub fn quiescer(&self) -> Box<dyn Quiescer> {
        Box::new(Pause {
            paused: self.paused.clone(),
            idle: self.idle.clone(),
        })
    }

    /// Stops the writer; how many events it appended.
    pub async fn finish(mut self) -> u64 {
        self.stop.store(true, Ordering::SeqCst);
        (&mut self.task).await.unwrap_or(0)
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// Pauses the [`Writer`]: `stop` returns once the writer saw the pause
/// between two appends (it is idle), `resume` lets it go on.
struct Pause {
    paused: Arc<AtomicBool>,
    idle: Arc<AtomicBool>,
}

impl Quiescer for Pause {
    fn describe(&self) -> String {
        "the demo's audit writer".into()
    }
    fn stop(&mut self) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            self.idle.store(false, Ordering::SeqCst);
            self.paused.store(true, Ordering::SeqCst);
            let deadline = Instant::now() + STOP_LIMIT;
            while !self.idle.load(Ordering::SeqCst) {
                if Instant::now() > deadline {
                    crate::bail!("the demo writer did not stop within 30 s");
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Ok(())
        })
    }
    fn resume(&mut self) -> BoxFuture<'_, Result<()>> {
        self.paused.store(false, Ordering::SeqCst);
        Box::pin(async { Ok(()) })
    }
    fn manual_resume_hint(&self) -> String {
        "nothing to do (the demo's writer ends with the demo)".into()
    }
}
