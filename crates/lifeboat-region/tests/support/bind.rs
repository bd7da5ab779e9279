//! A real BIND 9 `named` for tests: Debian's `/usr/sbin/named` in the
//! foreground (`-g`), as the user running the tests, on a free loopback
//! port, with everything (named.conf, the zone and its journal, the pid
//! file, the session key) in a temporary directory. It serves one primary
//! zone, `kubernaut.test`, that accepts dynamic updates signed with one
//! HMAC-SHA256 TSIG key. Stopped (killed and reaped) on drop.
//!
//! Include it with `#[path = "support/bind.rs"] mod bind;`.
//!
//! [`Bind::start_in`] runs it inside a network namespace instead (a site of
//! the multi-region test bed, `crates/lifeboat-testbed`) on that site's
//! address and port 53; `dig` and `nsupdate` then run in that namespace
//! too.
//!
//! Without `named` or `dig` the test fails and says to run scripts/test.sh,
//! which installs `bind9` and `bind9-dnsutils`. Debian's AppArmor profile
//! for named (`/etc/apparmor.d/usr.sbin.named`) would deny the temporary
//! directory where AppArmor is enforced; this is said when named fails to
//! start (these machines run without AppArmor).

#![allow(dead_code)]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;

const NAMED: &str = "/usr/sbin/named";
pub const ZONE: &str = "kubernaut.test";
pub const KEY_NAME: &str = "lifeboat-key";
/// A key the server knows but whose updates no `allow-update` grants.
pub const UNGRANTED_KEY_NAME: &str = "ungranted-key";

pub struct Bind {
    dir: tempfile::TempDir,
    child: Child,
    addr: IpAddr,
    port: u16,
    secret: String,
    /// The network namespace named runs in (`ip netns exec`), if not the
    /// test's own.
    netns: Option<String>,
}

fn need(program: &str) -> PathBuf {
    let found = if program.starts_with('/') {
        Path::new(program).is_file().then(|| PathBuf::from(program))
    } else {
        std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|p| p.join(program))
                .find(|p| p.is_file())
        })
    };
    found.unwrap_or_else(|| {
        panic!(
            "{program} is not installed: these tests run a real BIND 9. Run scripts/test.sh \
             (it installs Debian's bind9 and bind9-dnsutils), or apt-get install bind9 \
             bind9-dnsutils"
        )
    })
}

/// A loopback port free for both TCP and UDP, reserved for this process.
use lifeboat_test_ports::reserve as free_port;

impl Bind {
    /// Starts named and waits until it answers the zone's SOA.
    pub fn start() -> Bind {
        Bind::launch(None, IpAddr::V4(Ipv4Addr::LOCALHOST), None)
    }

    /// Starts named in network namespace `netns` on `addr`:53 (`addr` must
    /// be an address of that namespace).
    pub fn start_in(netns: &str, addr: Ipv4Addr) -> Bind {
        Bind::launch(Some(netns.to_string()), IpAddr::V4(addr), Some(53))
    }

    /// A command for `program` in named's namespace.
    fn command(&self, program: &str) -> Command {
        command_in(self.netns.as_deref(), program)
    }

    fn launch(netns: Option<String>, addr: IpAddr, fixed_port: Option<u16>) -> Bind {
        need(NAMED);
        need("dig");
        need("nsupdate");
        let mut secret = [0u8; 32];
        for b in secret.iter_mut() {
            *b = rand::random();
        }
        let secret = base64::engine::general_purpose::STANDARD.encode(secret);
        // A port taken between free_port() and named's bind makes named
        // exit; try again on another.
        let mut last_log = String::new();
        for _ in 0..3 {
            let dir = tempfile::tempdir().expect("temporary directory");
            let port = fixed_port.unwrap_or_else(free_port);
            write_config(dir.path(), addr, port, &secret);
            let log = std::fs::File::create(dir.path().join("named.log")).unwrap();
            let child = command_in(netns.as_deref(), NAMED)
                .arg("-g")
                .arg("-c")
                .arg(dir.path().join("named.conf"))
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .expect("start /usr/sbin/named");
            let mut bind = Bind {
                dir,
                child,
                addr,
                port,
                secret: secret.clone(),
                netns: netns.clone(),
            };
            if bind.wait_ready() {
                return bind;
            }
            last_log = bind.log();
        }
        panic!(
            "named did not start (if AppArmor enforces Debian's usr.sbin.named profile, it \
             denies the temporary directory; put the profile in complain mode). Its log:\n\
             {last_log}"
        );
    }

    fn wait_ready(&mut self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return false;
            }
            if self.serial_opt().is_some() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    }

    /// named's output so far (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("named.log")).unwrap_or_default()
    }

    pub fn server(&self) -> SocketAddr {
        SocketAddr::new(self.addr, self.port)
    }

    /// The key's secret, base64, as `tsig-keygen` prints it (both keys
    /// share it).
    pub fn secret(&self) -> &str {
        &self.secret
    }

    /// `dig +short` over UDP: the answers for `name` and `rtype`, sorted.
    pub fn dig(&self, name: &str, rtype: &str) -> Vec<String> {
        let out = self
            .command("dig")
            .args(["+short", "+norecurse", "+time=2", "+tries=3"])
            .arg(format!("@{}", self.server().ip()))
            .args(["-p", &self.port.to_string(), name, rtype])
            .output()
            .expect("run dig");
        assert!(
            out.status.success(),
            "dig {name} {rtype} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut lines: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with(';'))
            .map(str::to_string)
            .collect();
        lines.sort();
        lines
    }

    fn serial_opt(&self) -> Option<u32> {
        let out = self
            .command("dig")
            .args(["+short", "+norecurse", "+time=1", "+tries=1"])
            .arg(format!("@{}", self.server().ip()))
            .args(["-p", &self.port.to_string(), ZONE, "SOA"])
            .output()
            .ok()?;
        let text = String::from_utf8_lossy(&out.stdout);
        text.split_whitespace().nth(2)?.parse().ok()
    }

    /// The zone's SOA serial: BIND raises it with every UPDATE that changes
    /// the zone.
    pub fn serial(&self) -> u32 {
        self.serial_opt().expect("the zone's SOA serial")
    }

    /// Another writer: `nsupdate -k <key file>` with `commands` on stdin
    /// (the secret stays in a file, never in an argument).
    pub fn nsupdate(&self, commands: &str) {
        use std::io::Write as _;
        let mut child = self
            .command("nsupdate")
            .arg("-k")
            .arg(self.dir.path().join("key.conf"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run nsupdate");
        let script = format!(
            "server {} {}\nzone {ZONE}\n{commands}\nsend\n",
            self.addr, self.port
        );
        child
            .stdin
            .take()
            .unwrap()
            .write_all(script.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "nsupdate failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// `program`, or `ip netns exec NETNS program` when `netns` is given.
fn command_in(netns: Option<&str>, program: &str) -> Command {
    match netns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns, program]);
            c
        }
        None => Command::new(program),
    }
}

fn write_config(dir: &Path, addr: IpAddr, port: u16, secret: &str) {
    let d = dir.display();
    let key = |name: &str| {
        format!("key \"{name}\" {{\n    algorithm hmac-sha256;\n    secret \"{secret}\";\n}};\n")
    };
    std::fs::write(dir.join("key.conf"), key(KEY_NAME)).unwrap();
    std::fs::write(dir.join("ungranted.conf"), key(UNGRANTED_KEY_NAME)).unwrap();
    let conf = format!(
        r#"include "{d}/key.conf";
include "{d}/ungranted.conf";
options {{
    directory "{d}";
    pid-file "{d}/named.pid";
    session-keyfile "{d}/session.key";
    managed-keys-directory "{d}";
    listen-on port {port} {{ {addr}; }};
    listen-on-v6 {{ none; }};
    recursion no;
    dnssec-validation no;
    notify no;
}};
controls {{ }};
zone "{ZONE}" {{
    type primary;
    file "{d}/{ZONE}.zone";
    allow-update {{ key {KEY_NAME}; }};
}};
"#
    );
    std::fs::write(dir.join("named.conf"), conf).unwrap();
    let zone = format!(
        "$TTL 60\n@ IN SOA ns.{ZONE}. hostmaster.{ZONE}. 1 60 60 600 60\n@ IN NS ns.{ZONE}.\n\
         ns IN A 127.0.0.1\n"
    );
    std::fs::write(dir.join(format!("{ZONE}.zone")), zone).unwrap();
}

impl Drop for Bind {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
