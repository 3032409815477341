//! An in-process scripted NMDC hub for what real hubs never send: a std
//! listener on 127.0.0.1 driven by the test (hostile input, redirects, the
//! soak test). Every read and accept has a time-out.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};

/// A scripted NMDC hub: a std listener on 127.0.0.1 driven by the test.
pub struct FakeHub {
    pub listener: TcpListener,
    pub port: super::ports::Port,
}

pub const FAKE_LOCK: &[u8] = b"EXTENDEDPROTOCOL_fake_LOCK_0123456789";

impl FakeHub {
    pub fn start() -> Result<FakeHub> {
        let port = super::ports::free_port()?;
        let listener =
            TcpListener::bind((Ipv4Addr::LOCALHOST, port.get())).context("binding the fake hub")?;
        listener.set_nonblocking(true)?;
        Ok(FakeHub { listener, port })
    }

    pub fn url(&self) -> String {
        format!("dchub://127.0.0.1:{}", self.port.get())
    }

    /// The next client connection (≤ 10 s).
    pub fn accept(&self) -> Result<FakeConn> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match self.listener.accept() {
                Ok((s, _)) => {
                    s.set_nonblocking(false)?;
                    s.set_read_timeout(Some(Duration::from_millis(50)))?;
                    s.set_write_timeout(Some(Duration::from_secs(10)))?;
                    return Ok(FakeConn { s, got: Vec::new() });
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    if Instant::now() > deadline {
                        bail!("no client connected to the fake hub within 10 s");
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(e) => return Err(e).context("accepting on the fake hub"),
            }
        }
    }

    /// True when no client connects within `d`.
    pub fn quiet_for(&self, d: Duration) -> Result<bool> {
        let deadline = Instant::now() + d;
        while Instant::now() < deadline {
            match self.listener.accept() {
                Ok(_) => return Ok(false),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(e) => return Err(e).context("accepting on the fake hub"),
            }
        }
        Ok(true)
    }
}

/// One client connection on the fake hub.
pub struct FakeConn {
    pub s: TcpStream,
    pub got: Vec<u8>,
}

impl FakeConn {
    pub fn send(&mut self, bytes: &[u8]) -> Result<()> {
        self.s.write_all(bytes).context("writing to the client")
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.got).into_owned()
    }

    /// Reads until what arrived contains `needle` (≤ 10 s).
    pub fn wait_for(&mut self, needle: &[u8]) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut buf = [0u8; 65536];
        while !self.got.windows(needle.len()).any(|w| w == needle) {
            if Instant::now() > deadline {
                bail!(
                    "the client did not send {:?}; got {:?}",
                    String::from_utf8_lossy(needle),
                    self.text()
                );
            }
            match self.s.read(&mut buf) {
                Ok(0) => bail!("the client closed the connection; got {:?}", self.text()),
                Ok(n) => self.got.extend_from_slice(&buf[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(e) => return Err(e).context("reading from the client"),
            }
        }
        Ok(())
    }

    /// True when the client closes the connection within 10 s.
    pub fn closed(&mut self) -> Result<bool> {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut buf = [0u8; 65536];
        while Instant::now() < deadline {
            match self.s.read(&mut buf) {
                Ok(0) => return Ok(true),
                Ok(n) => self.got.extend_from_slice(&buf[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(_) => return Ok(true),
            }
        }
        Ok(false)
    }

    /// The NMDC login as a hub sees it: `$Lock`, then the client's
    /// `$Supports` (before `$Key`), the right `$Key`, `$ValidateNick`; then
    /// `$Hello` and the client's `$Version`, `$GetNickList`, `$MyINFO`.
    pub fn login(&mut self, nick: &str) -> Result<()> {
        let mut lock = b"$Lock ".to_vec();
        lock.extend_from_slice(FAKE_LOCK);
        lock.extend_from_slice(b" Pk=fakehub|$HubName fake hub|");
        self.send(&lock)?;
        self.wait_for(format!("$ValidateNick {nick}|").as_bytes())?;
        let mut key = b"$Key ".to_vec();
        key.extend_from_slice(&dclua::proto::nmdc::lock_to_key(FAKE_LOCK));
        key.push(b'|');
        let want = [
            b"$Supports UserCommand NoGetINFO NoHello UserIP2 TTHSearch ZPipe0|".to_vec(),
            key,
            format!("$ValidateNick {nick}|").into_bytes(),
        ]
        .concat();
        ensure!(self.got == want, "login: got {:?}", self.text());
        self.got.clear();
        self.send(format!("$Hello {nick}|").as_bytes())?;
        self.wait_for(b"$MyINFO $ALL ")?;
        self.wait_for(b"$|")?;
        let text = self.text();
        ensure!(
            text.starts_with("$Version 1,0091|$GetNickList|$MyINFO $ALL "),
            "after $Hello: {text:?}"
        );
        Ok(())
    }
}

/// A deterministic stream of junk bytes (xorshift).
pub fn junk(len: usize, mut seed: u64) -> Vec<u8> {
    (0..len)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed >> 24) as u8
        })
        .collect()
}

/// Resident memory of this process, in bytes.
pub fn rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}
