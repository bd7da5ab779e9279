//! A health endpoint the tests switch on and off: a loopback port that
//! answers `200 ok` to every HTTP request while on (so it serves `http`
//! and `tcp` checks alike) and refuses connections while off (nothing
//! listens). Used by the region and failover daemon tests.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// A health endpoint on a fixed loopback port: answers `200 ok` to every
/// request while on; while off nothing listens (connection refused).
pub struct Endpoint {
    pub port: u16,
    on: Arc<AtomicBool>,
    quit: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Endpoint {
    pub fn start() -> Endpoint {
        let port = super::free_port();
        let on = Arc::new(AtomicBool::new(true));
        let quit = Arc::new(AtomicBool::new(false));
        let (on2, quit2) = (Arc::clone(&on), Arc::clone(&quit));
        let thread = std::thread::spawn(move || serve(port, &on2, &quit2));
        let e = Endpoint {
            port,
            on,
            quit,
            thread: Some(thread),
        };
        super::poll(Duration::from_secs(10), "the health endpoint", || {
            TcpStream::connect(("127.0.0.1", port)).ok()
        });
        e
    }

    pub fn set(&self, on: bool) {
        self.on.store(on, Ordering::SeqCst);
        // Off: wait until nothing listens any more, so the switch is real.
        super::poll(Duration::from_secs(10), "the endpoint to switch", || {
            (TcpStream::connect(("127.0.0.1", self.port)).is_ok() == on).then_some(())
        });
    }
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        self.quit.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(port: u16, on: &AtomicBool, quit: &AtomicBool) {
    let mut listener: Option<TcpListener> = None;
    while !quit.load(Ordering::SeqCst) {
        if !on.load(Ordering::SeqCst) {
            listener = None;
            std::thread::sleep(Duration::from_millis(10));
            continue;
        }
        if listener.is_none() {
            // std sets SO_REUSEADDR: the port can be bound again at once.
            match TcpListener::bind(("127.0.0.1", port)) {
                Ok(l) => {
                    l.set_nonblocking(true).unwrap();
                    listener = Some(l);
                }
                Err(_) => {
                    std::thread::sleep(Duration::from_millis(20));
                    continue;
                }
            }
        }
        match listener.as_ref().unwrap().accept() {
            Ok((mut s, _)) => {
                s.set_nonblocking(false).unwrap();
                s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
                let mut buf = [0u8; 2048];
                let mut got = Vec::new();
                while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => got.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = s.write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
                );
            }
            Err(_) => std::thread::sleep(Duration::from_millis(10)),
        }
    }
}
