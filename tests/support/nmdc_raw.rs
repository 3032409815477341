//! Raw NMDC actors for hostile-input tests: a user logged in to a hub by
//! hand, and a client-client peer that speaks the handshake by hand and then
//! whatever the test wants. Blocking `std::net` on 127.0.0.1, every read
//! with a time-out.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};

/// A user logged in to an NMDC hub by hand (raw protocol).
pub struct RawUser {
    pub stream: TcpStream,
    pub reader: BufReader<TcpStream>,
}

impl RawUser {
    /// Logs in as `nick` (passive, sharing nothing).
    pub fn login(port: u16, nick: &str) -> Result<RawUser> {
        let stream = TcpStream::connect(("127.0.0.1", port))?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        let reader = BufReader::new(stream.try_clone()?);
        let mut u = RawUser { stream, reader };
        let lock = u.wait_line("$Lock ", Duration::from_secs(10))?;
        let lock = lock["$Lock ".len()..].split(' ').next().unwrap_or("").as_bytes().to_vec();
        let mut hello = b"$Supports NoHello|$Key ".to_vec();
        hello.extend(dclua::proto::nmdc::lock_to_key(&lock));
        hello.extend(format!("|$ValidateNick {nick}|").as_bytes());
        u.stream.write_all(&hello)?;
        u.wait_line(&format!("$Hello {nick}"), Duration::from_secs(10))?;
        u.stream.write_all(
            format!(
                "$Version 1,0091|$GetNickList|$MyINFO $ALL {nick} <fake V:1,M:P,H:1/0/0,S:1>$ $100\x01$$0$|"
            )
            .as_bytes(),
        )?;
        Ok(u)
    }

    pub fn send(&mut self, s: &str) -> Result<()> {
        self.stream.write_all(s.as_bytes())?;
        Ok(())
    }

    /// Reads lines until one starts with `prefix`.
    pub fn wait_line(&mut self, prefix: &str, timeout: Duration) -> Result<String> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            let mut buf = Vec::new();
            self.reader.read_until(b'|', &mut buf)?;
            ensure!(!buf.is_empty(), "the hub closed the connection");
            let line = String::from_utf8_lossy(&buf).trim_end_matches('|').to_string();
            if line.starts_with(prefix) {
                return Ok(line);
            }
        }
        bail!("no {prefix} within {timeout:?}")
    }

    /// Waits for a `$ConnectToMe` to us and returns the port it names.
    pub fn wait_connect_to_me(&mut self) -> Result<u16> {
        let ctm = self.wait_line("$ConnectToMe", Duration::from_secs(15))?;
        ctm.rsplit(':')
            .next()
            .and_then(|p| p.trim_end_matches(|c: char| !c.is_ascii_digit()).parse().ok())
            .with_context(|| format!("a port in {ctm:?}"))
    }
}

/// A raw NMDC client-client peer that connected to dclua's listener (dclua
/// expects it: it answered the peer's `$RevConnectToMe`, or sent it a
/// `$ConnectToMe`).
pub struct FakePeer {
    pub stream: TcpStream,
    pub reader: BufReader<TcpStream>,
}

impl FakePeer {
    /// Connects as `nick` wanting to download from dclua (dclua has nothing
    /// to download from it: it says `$Direction Upload`).
    pub fn connect(port: u16, nick: &str) -> Result<FakePeer> {
        Self::handshake(port, nick, "$Direction Upload", "$Direction Download 100")
    }

    /// Connects as `nick`, a source dclua downloads from (dclua says
    /// `$Direction Download`; the peer answers that it uploads).
    pub fn connect_as_source(port: u16, nick: &str) -> Result<FakePeer> {
        Self::handshake(port, nick, "$Direction Download", "$Direction Upload 100")
    }

    fn handshake(port: u16, nick: &str, theirs: &str, ours: &str) -> Result<FakePeer> {
        let stream = TcpStream::connect(("127.0.0.1", port))?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        let reader = BufReader::new(stream.try_clone()?);
        let mut p = FakePeer { stream, reader };
        p.send(&format!("$MyNick {nick}|$Lock EXTENDEDPROTOCOLfake Pk=fake|"))?;
        // dclua: $MyNick, $Lock, $Supports, $Direction, $Key.
        for want in ["$MyNick", "$Lock", "$Supports", theirs, "$Key"] {
            let line = p.line()?;
            ensure!(line.starts_with(want), "expected {want}, got {line:?}");
        }
        p.send(&format!("$Supports ADCGet TTHL TTHF XmlBZList|{ours}|$Key k|"))?;
        Ok(p)
    }

    pub fn send(&mut self, s: &str) -> Result<()> {
        self.stream.write_all(s.as_bytes())?;
        Ok(())
    }

    /// The next command, without its `|`.
    pub fn line(&mut self) -> Result<String> {
        let mut buf = Vec::new();
        self.reader.read_until(b'|', &mut buf)?;
        ensure!(buf.last() == Some(&b'|'), "connection ended: {:?}", String::from_utf8_lossy(&buf));
        buf.pop();
        Ok(String::from_utf8_lossy(&buf).into_owned())
    }

    /// Asks dclua for something (`$ADCGET ...`), returns its answer line.
    pub fn get(&mut self, what: &str) -> Result<String> {
        self.send(&format!("$ADCGET {what}|"))?;
        self.line()
    }

    /// Reads until dclua closes the connection (or 10 s pass); what came.
    pub fn read_to_close(&mut self) -> Vec<u8> {
        use std::io::Read;
        let mut rest = Vec::new();
        let _ = self.reader.read_to_end(&mut rest);
        rest
    }
}
