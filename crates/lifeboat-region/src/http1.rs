//! One plain HTTP/1.1 exchange (`Connection: close`) through hyper, bounded
//! by a timeout: Patroni's REST API and the daemons' calls to each other
//! (the failsafe, [`crate::failsafe::peers`]). Plain HTTP as the daemons' API serves it;
//! put the daemons on a private network or behind a TLS proxy.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{CONNECTION, CONTENT_TYPE, HOST};
use hyper_util::rt::TokioIo;

/// `http://host[:port][/]` split into host and port (80 when absent); an
/// IPv6 host in brackets. `None` for anything else (a path, user info, a
/// query, another scheme).
pub fn host_port(url: &str) -> Option<(String, u16)> {
    let rest = url.strip_prefix("http://")?;
    let authority = rest.strip_suffix('/').unwrap_or(rest);
    if authority.is_empty() || authority.contains(['/', '@', '?', '#']) {
        return None;
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (h, after) = v6.split_once(']')?;
        match after.strip_prefix(':') {
            Some(p) => (h, p.parse::<u16>().ok()?),
            None if after.is_empty() => (h, 80),
            None => return None,
        }
    } else {
        match authority.split_once(':') {
            Some((h, p)) => (h, p.parse::<u16>().ok()?),
            None => (authority, 80),
        }
    };
    (!host.is_empty() && port != 0).then(|| (host.to_string(), port))
}

/// POSTs `body` (JSON) to `path` on `host:port` with the extra `headers`;
/// the status and the body, or a transport error (connect, send, read, the
/// timeout) as text.
pub async fn post_json(
    (host, port): (&str, u16),
    path: &str,
    headers: &[(hyper::header::HeaderName, String)],
    body: Vec<u8>,
    timeout: Duration,
) -> Result<(u16, Bytes), String> {
    request(
        (host, port),
        hyper::Method::POST,
        path,
        headers,
        Some(body),
        timeout,
    )
    .await
}

/// One request (`Content-Type: application/json` when there is a body);
/// the status and the body, or a transport error as text. Patroni's REST
/// API client ([`crate::managers::patroni::PatroniApi`]) and the daemons'
/// calls share it.
pub async fn request(
    (host, port): (&str, u16),
    method: hyper::Method,
    path: &str,
    headers: &[(hyper::header::HeaderName, String)],
    body: Option<Vec<u8>>,
    timeout: Duration,
) -> Result<(u16, Bytes), String> {
    let exchange = async {
        let stream = tokio::net::TcpStream::connect((host, port))
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake::<_, Full<Bytes>>(TokioIo::new(stream))
                .await
                .map_err(|e| format!("HTTP handshake: {e}"))?;
        let driver = tokio::spawn(async move {
            let _ = conn.await;
        });
        let host_header = if host.contains(':') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        };
        let mut req = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header(HOST, host_header)
            .header(CONNECTION, "close");
        if body.is_some() {
            req = req.header(CONTENT_TYPE, "application/json");
        }
        for (name, value) in headers {
            req = req.header(name, value);
        }
        let req = req
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| format!("building the request: {e}"))?;
        let result = async {
            let resp = sender
                .send_request(req)
                .await
                .map_err(|e| format!("request: {e}"))?;
            let status = resp.status().as_u16();
            let bytes = resp
                .into_body()
                .collect()
                .await
                .map_err(|e| format!("reading the answer: {e}"))?
                .to_bytes();
            Ok::<_, String>((status, bytes))
        }
        .await;
        driver.abort();
        result
    };
    match tokio::time::timeout(timeout, exchange).await {
        Ok(r) => r,
        Err(_) => Err(format!("no answer within {} s", timeout.as_secs_f64())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_port_table() {
        let hp = |h: &str, p| Some((h.to_string(), p));
        assert_eq!(host_port("http://10.0.1.2:8080"), hp("10.0.1.2", 8080));
        assert_eq!(host_port("http://eu-west.lb:8080/"), hp("eu-west.lb", 8080));
        assert_eq!(host_port("http://witness"), hp("witness", 80));
        assert_eq!(host_port("http://[fd00::1]:8080"), hp("fd00::1", 8080));
        assert_eq!(host_port("http://[fd00::1]"), hp("fd00::1", 80));
        for bad in [
            "https://x:1",
            "x:1",
            "http://",
            "http://x:1/api",
            "http://u@x:1",
            "http://x:0",
            "http://x:port",
            "http://[fd00::1]x",
        ] {
            assert_eq!(host_port(bad), None, "{bad}");
        }
    }
}
