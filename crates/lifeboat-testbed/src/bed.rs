//! Creating and removing a bed: the namespaces, the bridge, the addresses.
//!
//! Layout (docs/testbed.md): a core namespace `<prefix>core` holds a bridge
//! `br0`; site number `i` is the namespace `<prefix><site>`, whose `eth0` is
//! one end of a veth pair whose other end, `p<i>`, is a port of that bridge.
//! Sites get `<subnet>.(i+1)/24`. Interfaces are created directly inside the
//! bed's namespaces (`ip -n`), so the host's namespace never sees any.
//! `<prefix>` is `lb<pid>-<n>-`: this process's id and a counter, so beds of
//! parallel tests and of other processes never collide, and a bed whose
//! process is dead is recognised as left over.

use std::net::Ipv4Addr;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::cmd::{argv, run, run_sync};
use crate::latency;
use crate::procs::{Kill, Registry};
use crate::site::{SITE_IF, Shared, Site, SiteInner};
use crate::{BedError, LatencyMechanism};

static BEDS: AtomicU32 = AtomicU32::new(0);

/// What to build.
#[derive(Clone, Debug)]
pub struct BedSpec {
    /// Site names (`[a-z0-9-]`, 1–20 characters, not `core`), e.g.
    /// `us-east`, `eu-west`, `witness`.
    pub sites: Vec<String>,
    /// The /24 the sites' addresses come from (its last octet is ignored).
    /// Private to the bed: no host interface ever has it.
    pub subnet: Ipv4Addr,
    /// The `lifeboat-netdelay` program; `None`: `LIFEBOAT_NETDELAY_BIN`, else
    /// next to the running executable (`target/<profile>/`, where cargo puts
    /// it; test executables are one level below, in `deps/`).
    pub netdelay_bin: Option<PathBuf>,
}

impl BedSpec {
    pub fn new<I, S>(sites: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        BedSpec {
            sites: sites.into_iter().map(Into::into).collect(),
            subnet: Ipv4Addr::new(10, 77, 0, 0),
            netdelay_bin: None,
        }
    }

    pub fn netdelay_bin(mut self, path: impl Into<PathBuf>) -> Self {
        self.netdelay_bin = Some(path.into());
        self
    }

    fn check(&self) -> Result<(), BedError> {
        if self.sites.is_empty() || self.sites.len() > 200 {
            return Err(BedError::Spec("between 1 and 200 sites".into()));
        }
        for (i, s) in self.sites.iter().enumerate() {
            let ok = !s.is_empty()
                && s.len() <= 20
                && s.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
            if !ok || s == "core" {
                return Err(BedError::Spec(format!(
                    "site name {s:?}: use 1-20 characters of a-z, 0-9 and '-', not \"core\""
                )));
            }
            if self.sites[..i].contains(s) {
                return Err(BedError::Spec(format!("site {s:?} named twice")));
            }
        }
        Ok(())
    }
}

/// A running bed. Removed (every process in its namespaces killed and
/// reaped, the namespaces and its directory deleted) by [`Bed::destroy`] or
/// on drop.
pub struct Bed {
    pub(crate) shared: Arc<Shared>,
    pub(crate) sites: Vec<Site>,
    pub(crate) core: String,
    /// The core namespace as a [`Site`] (no address): where the bed's own
    /// helpers run.
    pub(crate) core_site: Site,
    prefix: String,
    pub(crate) netdelay_bin: Option<PathBuf>,
    pub(crate) latency: tokio::sync::Mutex<latency::State>,
    torn_down: bool,
}

impl std::fmt::Debug for Bed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bed")
            .field("prefix", &self.prefix)
            .field("sites", &self.sites)
            .finish()
    }
}

impl Bed {
    /// Builds the bed (after removing beds left behind by dead processes).
    pub async fn create(spec: BedSpec) -> Result<Bed, BedError> {
        spec.check()?;
        if !crate::cmd::is_root() {
            return Err(BedError::NotRoot);
        }
        let ip = crate::cmd::ip()?;
        clean_leftovers(&ip);
        let n = BEDS.fetch_add(1, Ordering::Relaxed);
        let pid = std::process::id();
        let prefix = format!("lb{pid}-{n}-");
        let dir = std::env::temp_dir().join(format!("lifeboat-bed-{pid}-{n}"));
        std::fs::create_dir_all(&dir)
            .map_err(BedError::io(format!("creating {}", dir.display())))?;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755))
            .map_err(BedError::io("chmod the bed directory"))?;
        let shared = Arc::new(Shared {
            registry: Arc::new(Registry::default()),
            dir,
            ip: ip.clone(),
        });
        let core_site = Site {
            inner: Arc::new(SiteInner {
                name: "core".into(),
                netns: format!("{prefix}core"),
                addr: Ipv4Addr::UNSPECIFIED,
                core_port: String::new(),
                shared: shared.clone(),
            }),
        };
        std::fs::create_dir_all(core_site.dir())
            .map_err(BedError::io("creating the core's directory"))?;
        let mut bed = Bed {
            shared,
            sites: Vec::new(),
            core: format!("{prefix}core"),
            core_site,
            prefix,
            netdelay_bin: spec.netdelay_bin.clone(),
            latency: tokio::sync::Mutex::new(latency::State::default()),
            torn_down: false,
        };
        // `bed` owns whatever exists from here on: an error drops it, which removes it.
        let core = bed.core.clone();
        run(&argv([&ip, "netns", "add", &core])).await?;
        for a in [
            argv([&ip, "-n", &core, "link", "set", "lo", "up"]),
            argv([&ip, "-n", &core, "link", "add", "br0", "type", "bridge"]),
            argv([&ip, "-n", &core, "link", "set", "br0", "up"]),
        ] {
            run(&a).await?;
        }
        let o = spec.subnet.octets();
        for (i, name) in spec.sites.iter().enumerate() {
            let netns = format!("{}{name}", bed.prefix);
            let addr = Ipv4Addr::new(o[0], o[1], o[2], (i + 1) as u8);
            let port = format!("p{i}");
            run(&argv([&ip, "netns", "add", &netns])).await?;
            let site = Site {
                inner: Arc::new(SiteInner {
                    name: name.clone(),
                    netns: netns.clone(),
                    addr,
                    core_port: port.clone(),
                    shared: bed.shared.clone(),
                }),
            };
            bed.sites.push(site.clone());
            std::fs::create_dir_all(site.dir())
                .map_err(BedError::io("creating a site directory"))?;
            std::fs::set_permissions(site.dir(), std::fs::Permissions::from_mode(0o755))
                .map_err(BedError::io("chmod a site directory"))?;
            let cidr = format!("{addr}/24");
            for a in [
                argv([
                    &ip, "-n", &core, "link", "add", &port, "type", "veth", "peer", "name",
                    SITE_IF, "netns", &netns,
                ]),
                argv([&ip, "-n", &core, "link", "set", &port, "master", "br0"]),
                argv([&ip, "-n", &core, "link", "set", &port, "up"]),
                argv([&ip, "-n", &netns, "addr", "add", &cidr, "dev", SITE_IF]),
                argv([&ip, "-n", &netns, "link", "set", SITE_IF, "up"]),
                argv([&ip, "-n", &netns, "link", "set", "lo", "up"]),
            ] {
                run(&a).await?;
            }
        }
        Ok(bed)
    }

    /// The common prefix of this bed's namespace names (`lb<pid>-<n>-`).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }
    /// The core namespace (the bridge).
    pub fn core_netns(&self) -> &str {
        &self.core
    }
    /// The bed's directory: logs and data of every site, removed with the bed.
    pub fn dir(&self) -> &std::path::Path {
        &self.shared.dir
    }
    pub fn sites(&self) -> &[Site] {
        &self.sites
    }
    /// The site named `name`. Panics when there is none (a typo in a test);
    /// [`Bed::find_site`] returns an error instead.
    pub fn site(&self, name: &str) -> &Site {
        self.find_site(name)
            .unwrap_or_else(|e| panic!("{e}; the bed's sites: {:?}", self.site_names()))
    }
    pub fn find_site(&self, name: &str) -> Result<&Site, BedError> {
        self.sites
            .iter()
            .find(|s| s.name() == name)
            .ok_or_else(|| BedError::NoSuchSite(name.to_string()))
    }
    fn site_names(&self) -> Vec<&str> {
        self.sites.iter().map(|s| s.name()).collect()
    }
    /// Which latency mechanism [`Bed::set_latency`] found (`None` before its first use).
    pub fn latency_mechanism(&self) -> Option<LatencyMechanism> {
        self.latency.try_lock().ok().and_then(|s| s.mechanism)
    }

    /// Removes the bed now and reports what failed (drop does the same and
    /// prints failures to stderr).
    pub async fn destroy(mut self) -> Result<(), BedError> {
        tokio::task::spawn_blocking(move || self.teardown())
            .await
            .unwrap_or_else(|e| {
                Err(BedError::Io {
                    what: "removing the bed".into(),
                    source: std::io::Error::other(e.to_string()),
                })
            })
    }

    fn namespaces(&self) -> Vec<String> {
        let mut all: Vec<String> = self.sites.iter().map(|s| s.netns().to_string()).collect();
        all.push(self.core.clone());
        all
    }

    fn teardown(&mut self) -> Result<(), BedError> {
        if self.torn_down {
            return Ok(());
        }
        self.torn_down = true;
        let namespaces = self.namespaces();
        let registry = self.shared.registry.clone();
        let killed =
            Kill::new(format!("bed {}", self.prefix), &namespaces, &registry).run_blocking();
        registry.kill_remaining();
        let mut first_err = killed.err();
        for ns in &namespaces {
            if std::path::Path::new("/run/netns").join(ns).exists()
                && let Err(e) = run_sync(&argv([&self.shared.ip, "netns", "del", ns]))
            {
                first_err.get_or_insert(e);
            }
        }
        if let Err(e) = std::fs::remove_dir_all(&self.shared.dir)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            first_err.get_or_insert(BedError::Io {
                what: format!("removing {}", self.shared.dir.display()),
                source: e,
            });
        }
        first_err.map_or(Ok(()), Err)
    }
}

impl Drop for Bed {
    fn drop(&mut self) {
        if let Err(e) = self.teardown() {
            eprintln!("lifeboat-testbed: removing bed {}: {e}", self.prefix);
        }
    }
}

/// The pid in a bed's namespace or directory name, `lb<pid>-<n>-<site>` or
/// `lifeboat-bed-<pid>-<n>`.
fn owner_pid(name: &str) -> Option<u32> {
    let rest = name
        .strip_prefix("lifeboat-bed-")
        .or_else(|| name.strip_prefix("lb"))?;
    let (pid, rest) = rest.split_once('-')?;
    let (n, _) = rest.split_once('-').unwrap_or((rest, ""));
    n.parse::<u32>().ok()?;
    pid.parse().ok()
}

fn alive(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// Where [`sweep_lock`] locks.
const SWEEP_LOCK: &str = "/run/lifeboat-testbed-sweep.lock";

/// Blocks until this process holds the machine-wide lock under which left
/// over beds are swept (released when the file is dropped). Two test
/// binaries run at once (`scripts/test.sh`'s lanes), each sweeping when it
/// makes a bed: without it, one sweep removed a namespace that the other
/// binary's test was still making on purpose as a leftover (`ip netns add`
/// creates the file, then bind-mounts it; removed in between, the add
/// fails). A test that makes a leftover holds it meanwhile.
pub fn sweep_lock() -> std::io::Result<std::fs::File> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(SWEEP_LOCK)?;
    file.lock()?;
    Ok(file)
}

/// Removes namespaces and directories of beds whose process is dead (a test
/// run that crashed or was killed), under [`sweep_lock`]. Best effort:
/// failures are printed.
fn clean_leftovers(ip: &str) {
    let _sweeping = sweep_lock()
        .map_err(|e| eprintln!("lifeboat-testbed: locking {SWEEP_LOCK}: {e}; sweeping anyway"))
        .ok();
    let me = std::process::id();
    let stale_pid = |name: &str| owner_pid(name).is_some_and(|p| p != me && !alive(p));
    let listed = run_sync(&argv([ip, "netns", "list"])).unwrap_or_default();
    let stale: Vec<String> = listed
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| stale_pid(n))
        .map(str::to_string)
        .collect();
    if !stale.is_empty() {
        let registry = Registry::default();
        if let Err(e) = Kill::new("a left-over bed".into(), &stale, &registry).run_blocking() {
            eprintln!("lifeboat-testbed: {e}");
        }
        for ns in &stale {
            // A parallel `create` may have removed it meanwhile.
            if let Err(e) = run_sync(&argv([ip, "netns", "del", ns]))
                && std::path::Path::new("/run/netns").join(ns).exists()
            {
                eprintln!("lifeboat-testbed: removing left-over namespace {ns}: {e}");
            }
        }
    }
    if let Ok(dir) = std::fs::read_dir(std::env::temp_dir()) {
        for e in dir.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            if name.starts_with("lifeboat-bed-") && stale_pid(&name) {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_pids_of_names() {
        for (name, want) in [
            ("lb123-0-us-east", Some(123)),
            ("lb123-4-core", Some(123)),
            ("lifeboat-bed-77-2", Some(77)),
            ("lbx-0-a", None),
            ("lb12", None),
            ("lb12-x-a", None),
            ("other", None),
            ("lifeboat-pg-abc", None),
        ] {
            assert_eq!(owner_pid(name), want, "{name}");
        }
    }

    #[test]
    fn spec_names_checked() {
        assert!(
            BedSpec::new(["us-east", "eu-west", "witness"])
                .check()
                .is_ok()
        );
        for bad in [
            vec!["core"],
            vec!["a", "a"],
            vec!["Upper"],
            vec![],
            vec!["a_b"],
        ] {
            assert!(BedSpec::new(bad.clone()).check().is_err(), "{bad:?}");
        }
    }
}
