//! Host names to addresses, off the worker thread.
//!
//! The OS resolver blocks; a session asks for a name with [`start`] and
//! gets a [`Dial`]: either the address at once (the host was an IP address)
//! or a helper task whose result comes back to the job as a `TaskDone`,
//! to be handed to [`finish`]. The choice among several addresses is made
//! here once: IPv4 first (most DC software listens on IPv4 only), then the
//! first one given.

use std::io;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};

use super::error::ConnError;
use crate::runtime::{Context, TaskId};

/// Where a dial stands.
#[derive(Debug)]
pub enum Dial {
    /// The address is known: connect.
    Ready(SocketAddr),
    /// A helper resolves the name; its `TaskDone` goes to [`finish`].
    Resolving(TaskId),
}

/// The addresses a resolving task produced.
pub type Resolved = io::Result<Vec<SocketAddr>>;

/// Starts dialling `host:port` for the job of `cx`.
pub fn start(cx: &mut Context<'_>, host: &str, port: u16) -> Dial {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return Dial::Ready(SocketAddr::new(ip, port));
    }
    let name = host.to_string();
    Dial::Resolving(
        cx.submit(move || -> Resolved { Ok((name.as_str(), port).to_socket_addrs()?.collect()) }),
    )
}

/// The address to connect to from a resolving task's result.
pub fn finish(host: &str, result: Resolved) -> Result<SocketAddr, ConnError> {
    let addrs = result.map_err(|source| ConnError::Resolve { host: host.to_string(), source })?;
    pick(&addrs).ok_or_else(|| ConnError::NoAddress { host: host.to_string() })
}

/// IPv4 first, then the first address.
pub fn pick(addrs: &[SocketAddr]) -> Option<SocketAddr> {
    addrs.iter().find(|a| a.is_ipv4()).or(addrs.first()).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_is_preferred_and_errors_name_the_host() {
        let v6: SocketAddr = "[::1]:411".parse().unwrap();
        let v4: SocketAddr = "127.0.0.1:411".parse().unwrap();
        assert_eq!(pick(&[v6, v4]), Some(v4));
        assert_eq!(pick(&[v6]), Some(v6));
        let e = finish("hub.invalid", Ok(vec![])).unwrap_err();
        assert_eq!(e.to_string(), "resolving hub.invalid: the name has no address");
        let e = finish("hub.invalid", Err(io::Error::other("no such host"))).unwrap_err();
        assert_eq!(e.to_string(), "resolving hub.invalid: no such host");
    }
}
