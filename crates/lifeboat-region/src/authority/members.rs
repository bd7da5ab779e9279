//! One etcd client per configured member, so that a member which swallows
//! requests cannot take a whole attempt.
//!
//! etcd's own client balances requests over the endpoints and picks a
//! member at random for each (tonic gives its connections no load). A member
//! cut off by a partition still looks connected until its HTTP/2 keep-alive
//! times out (10 s + the dial timeout), so a request the balancer gives it
//! hangs until the attempt is cut: 1.2 s per such attempt in the fast
//! profile, the main cost of a partition's failover on the test bed, and
//! twice in a row it outlasted a fence deadline. Here:
//!
//! - [`Members::any`] sends an idempotent request (a read, a plain put, a
//!   lease renewal) to **every** member at once, each on its own connection,
//!   and takes the first success (or the first answer that settles it, such
//!   as "lease not found"). A silent member costs nothing while any other
//!   answers; a member without a leader answers "no leader" at once (every
//!   request carries etcd's require-leader flag).
//! - [`Members::one`] sends a request that must not be sent twice (a grant, a
//!   transaction, a campaign) to the **preferred** member: the one whose
//!   answer won the latest [`Members::any`]. An attempt there that fails
//!   transiently or is cut moves the preference to the next member, so a
//!   retry goes elsewhere.
//!
//! Connections are opened on first use and kept. With credentials, opening
//! one authenticates through that member (a member that cannot reach the
//! majority cannot authenticate; it is tried again at the next request).
//! etcd replicates a token through raft, so any member accepts it.

use std::future::Future;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use etcd_client::{Client, ConnectOptions};
use futures_util::stream::{FuturesUnordered, StreamExt};

/// The members' clients and which one answered last.
pub(super) struct Members {
    endpoints: Vec<String>,
    options: ConnectOptions,
    clients: Vec<Mutex<Option<Client>>>,
    preferred: AtomicUsize,
}

impl Members {
    /// `first` is a client of every endpoint (the balanced one the store
    /// connected with), used while a member's own connection cannot be
    /// opened; with one endpoint it is that member's client.
    pub(super) fn new(endpoints: Vec<String>, options: ConnectOptions, first: Client) -> Self {
        let single = endpoints.len() == 1;
        let clients = endpoints
            .iter()
            .map(|_| Mutex::new(single.then(|| first.clone())))
            .collect();
        Members {
            endpoints,
            options,
            clients,
            preferred: AtomicUsize::new(0),
        }
    }

    pub(super) fn len(&self) -> usize {
        self.endpoints.len()
    }

    /// Member `i`'s client, connected now if it is not yet.
    async fn client(&self, i: usize) -> Result<Client, etcd_client::Error> {
        if let Some(c) = lock(&self.clients[i]).clone() {
            return Ok(c);
        }
        let c = Client::connect([self.endpoints[i].as_str()], Some(self.options.clone())).await?;
        *lock(&self.clients[i]) = Some(c.clone());
        Ok(c)
    }

    /// Sends `call` to every member at once; the first success, else the
    /// first error for which `decisive` holds, else (all failed) the error
    /// of the lowest-numbered member. Only for requests that may be sent
    /// more than once.
    pub(super) async fn any<T, F, Fut>(
        &self,
        call: F,
        decisive: impl Fn(&etcd_client::Error) -> bool,
    ) -> Result<T, etcd_client::Error>
    where
        F: Fn(Client) -> Fut,
        Fut: Future<Output = Result<T, etcd_client::Error>>,
    {
        let call = &call;
        let asks: FuturesUnordered<_> = (0..self.len())
            .map(|i| async move {
                let r = match self.client(i).await {
                    Ok(c) => call(c).await,
                    Err(e) => Err(e),
                };
                (i, r)
            })
            .collect();
        match first_of(asks, decisive).await {
            Some((i, result)) => {
                if result.is_ok() {
                    self.preferred.store(i, Ordering::Relaxed);
                }
                result
            }
            None => Err(etcd_client::Error::InvalidArgs(
                "no etcd endpoints configured".to_string(),
            )),
        }
    }

    /// Sends `call` once, to the preferred member. When the attempt fails
    /// transiently (by `transient`) or is dropped unfinished (cut by the
    /// caller's timeout: the member may be swallowing requests), the next
    /// member becomes the preferred one.
    pub(super) async fn one<T, F, Fut>(
        &self,
        call: F,
        transient: impl Fn(&etcd_client::Error) -> bool,
    ) -> Result<T, etcd_client::Error>
    where
        F: FnOnce(Client) -> Fut,
        Fut: Future<Output = Result<T, etcd_client::Error>>,
    {
        let i = self.preferred.load(Ordering::Relaxed) % self.len();
        let mut moves_on = MoveOn {
            members: self,
            from: i,
            armed: true,
        };
        let result = match self.client(i).await {
            Ok(c) => call(c).await,
            Err(e) => Err(e),
        };
        moves_on.armed = matches!(&result, Err(e) if transient(e));
        result
    }
}

/// Moves the preference past member `from` when dropped armed.
struct MoveOn<'a> {
    members: &'a Members,
    from: usize,
    armed: bool,
}

impl Drop for MoveOn<'_> {
    fn drop(&mut self) {
        if self.armed {
            let next = (self.from + 1) % self.members.len();
            // Only if nobody moved it meanwhile (a fan-out's winner knows better).
            let _ = self.members.preferred.compare_exchange(
                self.from,
                next,
                Ordering::Relaxed,
                Ordering::Relaxed,
            );
        }
    }
}

fn lock(slot: &Mutex<Option<Client>>) -> std::sync::MutexGuard<'_, Option<Client>> {
    slot.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The first success among `asks` (numbered), else the first error that is
/// `decisive`, else the lowest-numbered error; with the number of the ask
/// that gave the answer. `None` when there were no asks.
pub(super) async fn first_of<T, E, S>(
    mut asks: S,
    decisive: impl Fn(&E) -> bool,
) -> Option<(usize, Result<T, E>)>
where
    S: futures_util::Stream<Item = (usize, Result<T, E>)> + Unpin,
{
    let mut lowest: Option<(usize, E)> = None;
    while let Some((i, r)) = asks.next().await {
        match r {
            Ok(v) => return Some((i, Ok(v))),
            Err(e) if decisive(&e) => return Some((i, Err(e))),
            Err(e) => {
                if lowest.as_ref().is_none_or(|(j, _)| i < *j) {
                    lowest = Some((i, e));
                }
            }
        }
    }
    lowest.map(|(i, e)| (i, Err(e)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::pending;
    use std::time::Duration;

    type Ask = std::pin::Pin<Box<dyn Future<Output = (usize, Result<u32, &'static str>)>>>;

    fn asks(list: Vec<Ask>) -> FuturesUnordered<Ask> {
        list.into_iter().collect()
    }
    fn now(i: usize, r: Result<u32, &'static str>) -> Ask {
        Box::pin(async move { (i, r) })
    }
    fn later(i: usize, ms: u64, r: Result<u32, &'static str>) -> Ask {
        Box::pin(async move {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            (i, r)
        })
    }
    fn never(i: usize) -> Ask {
        Box::pin(async move { (i, pending::<Result<u32, &'static str>>().await) })
    }
    const GONE: fn(&&str) -> bool = |e| *e == "gone";

    #[tokio::test]
    async fn first_of_takes_the_first_success_whoever_hangs_or_fails() {
        // A swallowing member and a refusing one: the third's answer wins.
        let r = first_of(
            asks(vec![
                never(0),
                now(1, Err("no leader")),
                later(2, 20, Ok(7)),
            ]),
            GONE,
        )
        .await;
        assert_eq!(r, Some((2, Ok(7))));
        // The first success, not the lowest-numbered one.
        let r = first_of(asks(vec![later(0, 30, Ok(1)), now(1, Ok(2))]), GONE).await;
        assert_eq!(r, Some((1, Ok(2))));
    }

    #[tokio::test]
    async fn first_of_settles_on_a_decisive_answer_and_else_reports_the_lowest_error() {
        let r = first_of(asks(vec![never(0), now(1, Err("gone"))]), GONE).await;
        assert_eq!(r, Some((1, Err("gone"))));
        let r = first_of(
            asks(vec![
                later(0, 20, Err("a")),
                now(1, Err("b")),
                now(2, Err("c")),
            ]),
            GONE,
        )
        .await;
        assert_eq!(r, Some((0, Err("a"))));
        // All failed but one hangs: it waits (the caller's cut ends it).
        let r = tokio::time::timeout(
            Duration::from_millis(50),
            first_of(asks(vec![now(0, Err("a")), never(1)]), GONE),
        )
        .await;
        assert!(r.is_err());
    }

    fn members(n: usize) -> Members {
        Members {
            endpoints: (0..n)
                .map(|i| format!("http://127.0.0.1:{}", 1 + i))
                .collect(),
            options: ConnectOptions::new(),
            clients: (0..n).map(|_| Mutex::new(None)).collect(),
            preferred: AtomicUsize::new(0),
        }
    }

    #[test]
    fn an_attempt_that_fails_or_is_cut_moves_the_preference_on_and_a_success_keeps_it() {
        let m = members(3);
        let cut = |m: &Members, from| {
            drop(MoveOn {
                members: m,
                from,
                armed: true,
            })
        };
        cut(&m, 0);
        assert_eq!(m.preferred.load(Ordering::Relaxed), 1);
        // A stale attempt (from member 0 again) does not move it past 1.
        cut(&m, 0);
        assert_eq!(m.preferred.load(Ordering::Relaxed), 1);
        drop(MoveOn {
            members: &m,
            from: 1,
            armed: false,
        });
        assert_eq!(m.preferred.load(Ordering::Relaxed), 1);
        cut(&m, 1);
        cut(&m, 2);
        assert_eq!(m.preferred.load(Ordering::Relaxed), 0, "wraps around");
    }
}
