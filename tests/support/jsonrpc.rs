//! A minimal JSON-RPC 2.0 client over HTTP/1.1 for eiskaltdcpp-daemon's control interface
//! on 127.0.0.1: one POST per call on a fresh `TcpStream`, `Connection: close`.
//!
//! This module must not talk to any address but 127.0.0.1, nor wait without a timeout.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

/// Largest response accepted (a file list in base32 can be large; anything bigger is a bug).
const MAX_RESPONSE: usize = 256 << 20;

/// A JSON-RPC endpoint at `http://127.0.0.1:PORT/`.
#[derive(Debug)]
pub struct JsonRpc {
    addr: SocketAddr,
    timeout: Duration,
    next_id: AtomicU64,
}

impl JsonRpc {
    /// A client for the endpoint on 127.0.0.1:`port`; every call is bounded by `timeout`
    /// (connect, and then each read or write).
    pub fn new(port: u16, timeout: Duration) -> JsonRpc {
        JsonRpc {
            addr: SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
            timeout,
            next_id: AtomicU64::new(1),
        }
    }

    /// The port called.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Calls `method` with `params` (an object or `null`) and returns its `result`.
    ///
    /// A JSON-RPC `error` member becomes an `Err` quoting it.
    pub fn call(&self, method: &str, params: Value) -> Result<Value> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let body = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        let body = serde_json::to_vec(&body).context("encoding a JSON-RPC request")?;
        let raw = self
            .post(&body)
            .with_context(|| format!("JSON-RPC {method} to http://{}/", self.addr))?;
        let reply: Value = serde_json::from_slice(&raw).with_context(|| {
            format!("JSON-RPC {method}: response is not JSON: {:?}", String::from_utf8_lossy(&raw))
        })?;
        if let Some(err) = reply.get("error").filter(|e| !e.is_null()) {
            bail!("JSON-RPC {method} failed: {err}");
        }
        Ok(reply.get("result").cloned().unwrap_or(Value::Null))
    }

    /// One HTTP POST; returns the response body of a 200 answer.
    fn post(&self, body: &[u8]) -> Result<Vec<u8>> {
        let mut stream = TcpStream::connect_timeout(&self.addr, self.timeout).context("connect")?;
        stream.set_read_timeout(Some(self.timeout))?;
        stream.set_write_timeout(Some(self.timeout))?;
        stream.set_nodelay(true)?;
        let head = format!(
            "POST / HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n",
            self.addr,
            body.len()
        );
        stream.write_all(head.as_bytes()).context("sending the request")?;
        stream.write_all(body).context("sending the request body")?;

        let mut raw = Vec::new();
        let mut buf = [0u8; 64 * 1024];
        let mut need: Option<usize> = None;
        loop {
            if let Some(total) = need {
                if raw.len() >= total {
                    break;
                }
            }
            let n = match stream.read(&mut buf) {
                Ok(n) => n,
                Err(e) => return Err(e).context("reading the response"),
            };
            if n == 0 {
                break;
            }
            raw.extend_from_slice(&buf[..n]);
            if raw.len() > MAX_RESPONSE {
                bail!("response larger than {MAX_RESPONSE} bytes");
            }
            if need.is_none() {
                if let Some((head_len, len)) = content_length(&raw)? {
                    need = Some(head_len + len);
                }
            }
        }
        parse_response(&raw)
    }
}

/// Once the header block is complete and has a Content-Length: (header length, body length).
fn content_length(raw: &[u8]) -> Result<Option<(usize, usize)>> {
    let Some(end) = find(raw, b"\r\n\r\n") else { return Ok(None) };
    let head = String::from_utf8_lossy(&raw[..end]);
    for line in head.lines().skip(1) {
        if let Some((name, value)) = line.split_once(':') {
            if name.trim().eq_ignore_ascii_case("content-length") {
                let len = value
                    .trim()
                    .parse::<usize>()
                    .with_context(|| format!("bad Content-Length {:?}", value.trim()))?;
                return Ok(Some((end + 4, len)));
            }
        }
    }
    Ok(None)
}

/// Splits a complete HTTP response; checks the status and undoes chunked encoding.
fn parse_response(raw: &[u8]) -> Result<Vec<u8>> {
    let end = find(raw, b"\r\n\r\n")
        .with_context(|| format!("incomplete HTTP response: {:?}", String::from_utf8_lossy(raw)))?;
    let head = String::from_utf8_lossy(&raw[..end]);
    let status = head.lines().next().unwrap_or_default();
    let code = status.split_whitespace().nth(1).unwrap_or_default();
    if code != "200" {
        bail!("HTTP status {status:?}: {:?}", String::from_utf8_lossy(&raw[end + 4..]));
    }
    let mut body = raw[end + 4..].to_vec();
    let chunked = head.lines().any(|l| {
        l.split_once(':').is_some_and(|(n, v)| {
            n.trim().eq_ignore_ascii_case("transfer-encoding")
                && v.trim().eq_ignore_ascii_case("chunked")
        })
    });
    if chunked {
        body = dechunk(&body)?;
    } else if let Some((head_len, len)) = content_length(raw)? {
        if raw.len() < head_len + len {
            bail!("response body cut short: {} of {len} bytes", raw.len() - head_len);
        }
        body.truncate(len);
    }
    Ok(body)
}

/// Decodes an HTTP/1.1 chunked body.
fn dechunk(mut data: &[u8]) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = find(data, b"\r\n").context("chunk size line without CRLF")?;
        let size_text = String::from_utf8_lossy(&data[..line_end]);
        let size_hex = size_text.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_hex, 16)
            .with_context(|| format!("bad chunk size {size_hex:?}"))?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Ok(out);
        }
        if data.len() < size {
            bail!("chunk cut short: {} of {size} bytes", data.len());
        }
        out.extend_from_slice(&data[..size]);
        data = data.get(size + 2..).context("chunk without trailing CRLF")?;
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}
