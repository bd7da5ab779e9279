//! Health probes and the checker loop against real servers on loopback that
//! this test starts: a plain HTTP/1.1 server written on tokio's TCP
//! listener (so each answer, and each silence, is exactly what the case
//! needs), the same behind TLS with an untrusted self-signed certificate
//! made by Debian's `openssl`, and bare TCP listeners. No timing is
//! asserted, only the outcome's kind.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lifeboat_region::health::{
    CheckKind, CheckSpec, Checker, Failure, Outcome, Report, SEARCH_WINDOW, Success, probe,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};

/// What the test server does with a request.
#[derive(Clone, Debug)]
enum Mode {
    /// Answers with this status and body.
    Answer(u16, Vec<u8>),
    /// Reads the request and never answers.
    Hold,
    /// Sends a 200 status, headers announcing a longer body, and `body`,
    /// then nothing more.
    HeadersThenHold(Vec<u8>),
}

struct Server {
    addr: SocketAddr,
    mode: Arc<Mutex<Mode>>,
    /// The request heads received, as text.
    requests: Arc<Mutex<Vec<String>>>,
    _task: tokio::task::JoinHandle<()>,
}

impl Server {
    async fn start(mode: Mode, tls: Option<tokio_rustls::TlsAcceptor>) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mode = Arc::new(Mutex::new(mode));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let (m, r) = (mode.clone(), requests.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (m, r, tls) = (m.clone(), r.clone(), tls.clone());
                tokio::spawn(async move {
                    match tls {
                        None => serve(stream, m, r).await,
                        Some(acceptor) => {
                            if let Ok(s) = acceptor.accept(stream).await {
                                serve(s, m, r).await;
                            }
                        }
                    }
                });
            }
        });
        Server {
            addr,
            mode,
            requests,
            _task: task,
        }
    }

    fn set(&self, mode: Mode) {
        *self.mode.lock().unwrap() = mode;
    }

    fn spec(&self, kind: CheckKind) -> CheckSpec {
        CheckSpec::new("web", kind, "127.0.0.1", self.addr.port())
    }
}

async fn serve<S: AsyncRead + AsyncWrite + Unpin>(
    mut s: S,
    mode: Arc<Mutex<Mode>>,
    requests: Arc<Mutex<Vec<String>>>,
) {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match s.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    requests
        .lock()
        .unwrap()
        .push(String::from_utf8_lossy(&head).into_owned());
    let mode = mode.lock().unwrap().clone();
    match mode {
        Mode::Answer(code, body) => {
            let head = format!(
                "HTTP/1.1 {code} Test\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = s.write_all(head.as_bytes()).await;
            let _ = s.write_all(&body).await;
            let _ = s.shutdown().await;
        }
        Mode::Hold => std::future::pending::<()>().await,
        Mode::HeadersThenHold(body) => {
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n",
                body.len() + 100_000
            );
            let _ = s.write_all(head.as_bytes()).await;
            let _ = s.write_all(&body).await;
            let _ = s.flush().await;
            std::future::pending::<()>().await
        }
    }
}

/// A port nothing listens on (reserved: nobody else binds it meanwhile).
use lifeboat_test_ports::reserve as closed_port;

/// A TLS acceptor with a fresh self-signed certificate (no CA trusts it),
/// made by `openssl req` in a temporary directory.
fn self_signed_acceptor() -> tokio_rustls::TlsAcceptor {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let dir = tempfile::tempdir().unwrap();
    let (key, cert) = (dir.path().join("key.pem"), dir.path().join("cert.pem"));
    let out = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "1",
        ])
        .args(["-subj", "/CN=untrusted.invalid", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run openssl ({e}): run scripts/test.sh, which installs Debian's openssl")
        });
    assert!(
        out.status.success(),
        "openssl req failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&cert)
        .unwrap()
        .map(|c| c.unwrap())
        .collect();
    let key = PrivateKeyDer::from_pem_file(&key).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .unwrap();
    tokio_rustls::TlsAcceptor::from(Arc::new(config))
}

fn failure(o: Outcome) -> Failure {
    match o {
        Outcome::Failure(f) => f,
        Outcome::Success(s) => panic!("expected a failure, got success: {s}"),
    }
}

fn success(o: Outcome) -> Success {
    match o {
        Outcome::Success(s) => s,
        Outcome::Failure(f) => panic!("expected a success, got failure: {f}"),
    }
}

#[tokio::test]
async fn http_200_is_healthy_and_the_request_looks_like_route53s() {
    let server = Server::start(Mode::Answer(200, b"ok".to_vec()), None).await;
    let mut spec = server.spec(CheckKind::Http);
    spec.resource_path = "healthz?deep=1".into();
    assert_eq!(success(probe(&spec).await), Success::Status { code: 200 });
    let requests = server.requests.lock().unwrap().clone();
    assert_eq!(requests.len(), 1, "{requests:?}");
    let head = requests[0].to_ascii_lowercase();
    assert!(
        head.starts_with("get /healthz?deep=1 http/1.1\r\n"),
        "{head}"
    );
    assert!(
        head.contains(&format!("\r\nhost: 127.0.0.1:{}\r\n", server.addr.port())),
        "{head}"
    );
    assert!(
        head.contains("\r\nuser-agent: lifeboat-health-check\r\n"),
        "{head}"
    );
}

#[tokio::test]
async fn status_codes_table() {
    // 2xx and 3xx pass (a redirect is not followed), anything else fails.
    let server = Server::start(Mode::Hold, None).await;
    for (code, healthy) in [
        (200, true),
        (204, true),
        (301, true),
        (399, true),
        (404, false),
        (500, false),
        (503, false),
    ] {
        server.set(Mode::Answer(code, Vec::new()));
        let outcome = probe(&server.spec(CheckKind::Http)).await;
        if healthy {
            assert_eq!(success(outcome), Success::Status { code }, "{code}");
        } else {
            assert_eq!(failure(outcome), Failure::Status { code }, "{code}");
        }
    }
}

#[tokio::test]
async fn refused_connections_fail_http_https_and_tcp() {
    let port = closed_port();
    for kind in [CheckKind::Http, CheckKind::Https, CheckKind::Tcp] {
        let spec = CheckSpec::new("web", kind, "127.0.0.1", port);
        assert_eq!(failure(probe(&spec).await), Failure::Refused, "{kind}");
    }
}

#[tokio::test]
async fn tcp_check_needs_only_a_connection() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let spec = CheckSpec::new(
        "db",
        CheckKind::Tcp,
        "127.0.0.1",
        listener.local_addr().unwrap().port(),
    );
    assert_eq!(success(probe(&spec).await), Success::Connected);
}

#[tokio::test]
async fn a_response_held_past_two_seconds_is_a_response_timeout() {
    let server = Server::start(Mode::Hold, None).await;
    let f = failure(probe(&server.spec(CheckKind::Http)).await);
    assert!(matches!(f, Failure::ResponseTimeout { .. }), "{f:?}");
}

#[tokio::test]
async fn unresolvable_host_fails_to_resolve() {
    let spec = CheckSpec::new("web", CheckKind::Http, "no-such-host.invalid", 80);
    let f = failure(probe(&spec).await);
    assert!(matches!(f, Failure::Resolve { .. }), "{f:?}");
}

/// A listener whose accept queue is full drops further SYNs (Linux), so
/// the connection is never established.
#[tokio::test]
async fn no_connection_within_four_seconds_is_a_connect_timeout() {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(0).unwrap();
    let addr = listener.local_addr().unwrap();
    // With a backlog of 0 the queue holds one connection: fill it first.
    let _filler = std::net::TcpStream::connect(addr).unwrap();
    let spec = CheckSpec::new("web", CheckKind::Http, "127.0.0.1", addr.port());
    let f = failure(probe(&spec).await);
    assert_eq!(f, Failure::ConnectTimeout { timeout_ms: 4000 });
    drop(listener);
}

#[tokio::test]
async fn search_string_must_be_in_the_first_5120_bytes() {
    let server = Server::start(Mode::Hold, None).await;
    let needle = "STATUS-OK";
    let padded = |at: usize, total: usize| {
        let mut body = vec![b'.'; total];
        body[at..at + needle.len()].copy_from_slice(needle.as_bytes());
        body
    };
    // (body, found?, bytes searched when not found)
    let cases: Vec<(Vec<u8>, bool, usize)> = vec![
        (b"STATUS-OK".to_vec(), true, 0),
        (padded(0, 20_000), true, 0),
        // Ends exactly at byte 5,120.
        (padded(SEARCH_WINDOW - needle.len(), 20_000), true, 0),
        // Straddles the limit: not entirely within the first 5,120 bytes.
        (
            padded(SEARCH_WINDOW - needle.len() + 1, 20_000),
            false,
            SEARCH_WINDOW,
        ),
        (padded(6_000, 20_000), false, SEARCH_WINDOW),
        (b"status-ok".to_vec(), false, 9),
        (Vec::new(), false, 0),
    ];
    for (i, (body, found, searched)) in cases.into_iter().enumerate() {
        server.set(Mode::Answer(200, body));
        let mut spec = server.spec(CheckKind::Http);
        spec.search_string = Some(needle.into());
        let outcome = probe(&spec).await;
        if found {
            assert_eq!(
                success(outcome),
                Success::StringFound { code: 200 },
                "case {i}"
            );
        } else {
            assert_eq!(
                failure(outcome),
                Failure::StringNotFound {
                    code: 200,
                    searched
                },
                "case {i}"
            );
        }
    }
    // A failing status fails before the body is looked at.
    server.set(Mode::Answer(503, needle.as_bytes().to_vec()));
    let mut spec = server.spec(CheckKind::Http);
    spec.search_string = Some(needle.into());
    assert_eq!(failure(probe(&spec).await), Failure::Status { code: 503 });
}

#[tokio::test]
async fn a_body_that_stops_before_the_string_is_a_body_timeout() {
    let server = Server::start(Mode::HeadersThenHold(b"partial".to_vec()), None).await;
    let mut spec = server.spec(CheckKind::Http);
    spec.search_string = Some("never-sent".into());
    let f = failure(probe(&spec).await);
    assert!(
        matches!(f, Failure::BodyTimeout { received: 7, .. }),
        "{f:?}"
    );
    // Found in what did arrive: success without waiting for the rest.
    spec.search_string = Some("part".into());
    assert_eq!(
        success(probe(&spec).await),
        Success::StringFound { code: 200 }
    );
}

#[tokio::test]
async fn https_with_an_untrusted_self_signed_certificate_is_healthy() {
    let server = Server::start(
        Mode::Answer(200, b"hello over tls".to_vec()),
        Some(self_signed_acceptor()),
    )
    .await;
    let spec = server.spec(CheckKind::Https);
    assert_eq!(success(probe(&spec).await), Success::Status { code: 200 });
    let mut spec = server.spec(CheckKind::Https);
    spec.search_string = Some("over tls".into());
    assert_eq!(
        success(probe(&spec).await),
        Success::StringFound { code: 200 }
    );
    // Through TLS the request is the same.
    let requests = server.requests.lock().unwrap().clone();
    assert_eq!(requests.len(), 2);
    server.set(Mode::Answer(503, Vec::new()));
    assert_eq!(
        failure(probe(&server.spec(CheckKind::Https)).await),
        Failure::Status { code: 503 }
    );
}

#[tokio::test]
async fn https_against_a_plain_http_server_fails_the_handshake() {
    let server = Server::start(Mode::Answer(200, Vec::new()), None).await;
    let f = failure(probe(&server.spec(CheckKind::Https)).await);
    assert!(matches!(f, Failure::TlsHandshake { .. }), "{f:?}");
}

async fn next(rx: &mut mpsc::Receiver<Report>) -> Report {
    tokio::time::timeout(Duration::from_secs(60), rx.recv())
        .await
        .expect("no report from the checker within 60 s")
        .expect("the checker stopped")
}

/// The loop against a real server whose answer the test switches: the
/// status flips after exactly `failure_threshold` consecutive failures and
/// back after as many successes; shutdown ends the loop.
#[tokio::test]
async fn checker_flips_after_the_threshold_and_stops_on_shutdown() {
    let server = Server::start(Mode::Answer(200, Vec::new()), None).await;
    let mut spec = server.spec(CheckKind::Http);
    spec.request_interval = Duration::from_millis(20);
    spec.failure_threshold = 2;
    let checker = Checker::new("us-east", "eu-west", vec![spec]);
    let (tx, mut rx) = mpsc::channel(16);
    let (stop, stopped) = oneshot::channel::<()>();
    let run = tokio::spawn(checker.run(tx, async move {
        let _ = stopped.await;
    }));

    let initial = next(&mut rx).await;
    assert!(initial.verdict.healthy && !initial.flipped);
    assert_eq!(initial.verdict.last_outcome, None);
    assert_eq!(
        (
            initial.verdict.region.as_str(),
            initial.verdict.check.as_str()
        ),
        ("us-east", "web")
    );
    assert_eq!(initial.verdict.observer, "eu-west");
    let first = next(&mut rx).await;
    assert_eq!(
        first.verdict.last_outcome,
        Some(Outcome::Success(Success::Status { code: 200 }))
    );
    assert!(first.verdict.healthy && !first.flipped);

    // (answer now, the outcome that marks it, status after 1st and 2nd such report)
    let phases = [
        (
            503,
            Outcome::Failure(Failure::Status { code: 503 }),
            true,
            false,
        ),
        (
            200,
            Outcome::Success(Success::Status { code: 200 }),
            false,
            true,
        ),
    ];
    for (code, marker, after_one, after_two) in phases {
        server.set(Mode::Answer(code, Vec::new()));
        // Reports of probes answered before the switch may still come.
        let mut report = next(&mut rx).await;
        while report.verdict.last_outcome.as_ref() != Some(&marker) {
            report = next(&mut rx).await;
        }
        assert_eq!(report.verdict.healthy, after_one, "first {code}");
        assert!(!report.flipped, "first {code}");
        let second = next(&mut rx).await;
        assert_eq!(second.verdict.last_outcome.as_ref(), Some(&marker));
        assert_eq!(second.verdict.healthy, after_two, "second {code}");
        assert!(second.flipped, "second {code}");
        assert_eq!(second.verdict.since, second.verdict.observed_at);
    }

    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .expect("the checker did not stop within 60 s of shutdown")
        .unwrap();
    // Its sender is gone with it: the channel ends after what was queued.
    while rx.recv().await.is_some() {}
}
