//! What an upload sends: a request ([`Request`]) turned into the bytes to
//! serve from the share, or the reason it is refused.
//!
//! Only hashed files inside the share are ever opened, and only through
//! [`ShareService::resolve`], which checks roots, links, the data folder and
//! changes since hashing; this module adds the request's own checks (the
//! identifier's form, the range against the size). It reads nothing: the
//! peer job streams from the returned [`Body`]. No slots here either: the
//! job asks for one with the [`Want`] this returns.

use std::fs::File;
use std::io::Read;

use super::session::{Kind, Refusal, Request};
use crate::proto::tth::Tth;
use crate::share::scan::ServeRefusal;
use crate::share::service::{ServeRequest, ShareService};
use crate::transfer::slots::Want;

/// The longest partial list we build for one request (uncompressed XML).
/// A recursive list of a whole big share is the full list: ask for
/// `files.xml.bz2` instead.
pub const MAX_PARTIAL_LIST: usize = 64 << 20;

/// Where the bytes of an answer come from.
#[derive(Debug)]
pub enum Body {
    /// A file on disk, from `pos` (already at the request's start) to `end`.
    File {
        /// Open for reading; read with positioned reads.
        file: File,
        /// The next byte to send.
        pos: u64,
        /// One past the last byte to send.
        end: u64,
    },
    /// Bytes made for this request (a partial list, TTH leaves).
    Memory {
        /// All of it.
        data: Vec<u8>,
        /// The next byte to send.
        pos: usize,
    },
}

impl Body {
    /// Bytes left to send.
    pub fn remaining(&self) -> u64 {
        match self {
            Body::File { pos, end, .. } => end - pos,
            Body::Memory { data, pos } => (data.len() - pos) as u64,
        }
    }
}

/// A request that will be served.
#[derive(Debug)]
pub struct Served {
    /// The first byte sent.
    pub start: u64,
    /// How many bytes (uncompressed).
    pub bytes: u64,
    /// The size of the whole file (or list).
    pub size: u64,
    /// Where they come from.
    pub body: Body,
    /// What it costs in slots.
    pub want: Want,
    /// What the user sees in events: the share path, `files.xml.bz2`, or a
    /// list folder.
    pub name: String,
}

/// Turns a request into what to send. `leaves` finds the TTH leaves of a
/// root (the hash store). Partial lists are not served here: the peer job
/// builds them on a helper thread ([`list_request`], [`list_served`]).
pub fn serve(
    share: &ShareService,
    leaves: &mut dyn FnMut(&Tth) -> Option<Vec<u8>>,
    req: &Request,
) -> Result<Served, Refusal> {
    match req.kind {
        Kind::File if is_file_list(&req.identifier) => {
            let path = share.file_list_path().ok_or_else(|| {
                Refusal::NotAvailable("our file list is not written yet".to_string())
            })?;
            let file = File::open(&path).map_err(|e| {
                Refusal::NotAvailable(format!("opening our file list {}: {e}", path.display()))
            })?;
            let size = file
                .metadata()
                .map_err(|e| Refusal::NotAvailable(format!("reading our file list: {e}")))?
                .len();
            let (start, bytes) = range(req, size)?;
            Ok(Served {
                start,
                bytes,
                size,
                body: Body::File { file, pos: start, end: start + bytes },
                want: Want::List,
                name: req.identifier.clone(),
            })
        }
        Kind::File => {
            let found = match tth_of(&req.identifier) {
                Some(tth) => share.resolve(ServeRequest::Tth(tth)),
                None if req.identifier.starts_with("TTH/") => {
                    return Err(Refusal::NotAvailable(format!(
                        "{:?} is not a valid TTH",
                        req.identifier
                    )))
                }
                None => share.resolve(ServeRequest::Path(&req.identifier)),
            }
            .map_err(refusal)?;
            let (start, bytes) = range(req, found.size)?;
            Ok(Served {
                start,
                bytes,
                size: found.size,
                body: Body::File { file: found.file, pos: start, end: start + bytes },
                want: Want::File(found.size),
                name: found.virtual_path,
            })
        }
        // Built on a helper thread: see `list_request` and `list_served`.
        Kind::List => Err(Refusal::Unsupported("a partial list is built apart".into())),
        Kind::Leaves => {
            let tth = tth_of(&req.identifier).ok_or_else(|| {
                Refusal::NotAvailable(format!("{:?} is not TTH/<root>", req.identifier))
            })?;
            // Only for what we share: the store may know trees of files that
            // left the share.
            let found = share.resolve(ServeRequest::Tth(tth)).map_err(refusal)?;
            let data = leaves(&tth).ok_or_else(|| {
                Refusal::NotAvailable(format!("no TTH leaves stored for {}", found.virtual_path))
            })?;
            memory(req, data, Want::Leaves, found.virtual_path)
        }
    }
}

/// Checks a partial list request (`list /dir/`) before its list is built.
pub fn list_request(req: &Request) -> Result<(), Refusal> {
    let dir = &req.identifier;
    if !dir.starts_with('/') || !dir.ends_with('/') {
        return Err(Refusal::NotAvailable(format!(
            "{dir:?} is not a folder (a partial list is asked for as /dir/)"
        )));
    }
    Ok(())
}

/// A partial list, built ([`ShareService::partial_list_task`]), as what to
/// send.
pub fn list_served(req: &Request, xml: Result<Vec<u8>, String>) -> Result<Served, Refusal> {
    let dir = &req.identifier;
    let xml = xml.map_err(|e| Refusal::NotAvailable(format!("the list of {dir:?}: {e}")))?;
    if xml.len() > MAX_PARTIAL_LIST {
        return Err(Refusal::NotAvailable(format!(
            "the list of {dir:?} is larger than {} MiB; ask for files.xml.bz2",
            MAX_PARTIAL_LIST >> 20
        )));
    }
    memory(req, xml, Want::List, dir.clone())
}

fn memory(req: &Request, data: Vec<u8>, want: Want, name: String) -> Result<Served, Refusal> {
    let size = data.len() as u64;
    let (start, bytes) = range(req, size)?;
    let end = (start + bytes) as usize;
    let data =
        if start == 0 && end == data.len() { data } else { data[start as usize..end].to_vec() };
    Ok(Served { start, bytes, size, body: Body::Memory { data, pos: 0 }, want, name })
}

/// `start` and the byte count of a request against a size.
fn range(req: &Request, size: u64) -> Result<(u64, u64), Refusal> {
    if req.start > size {
        return Err(Refusal::BadRange(format!(
            "start {} is past the end ({size} bytes)",
            req.start
        )));
    }
    match req.bytes {
        None => Ok((req.start, size - req.start)),
        Some(n) if req.start.checked_add(n).is_some_and(|end| end <= size) => Ok((req.start, n)),
        Some(n) => Err(Refusal::BadRange(format!(
            "{n} bytes from {} is past the end ({size} bytes)",
            req.start
        ))),
    }
}

fn is_file_list(identifier: &str) -> bool {
    matches!(identifier, "files.xml.bz2" | "/files.xml.bz2")
}

fn tth_of(identifier: &str) -> Option<Tth> {
    identifier.strip_prefix("TTH/")?.parse().ok()
}

fn refusal(e: ServeRefusal) -> Refusal {
    Refusal::NotAvailable(e.to_string())
}

/// Reads up to `buf.len()` bytes of a body at its position (a positioned read
/// for files: the handle is never shared with another reader's cursor).
pub fn read_body(body: &mut Body, buf: &mut [u8]) -> std::io::Result<usize> {
    match body {
        Body::File { file, pos, end } => {
            use std::os::unix::fs::FileExt;
            let want = buf.len().min((*end - *pos) as usize);
            if want == 0 {
                return Ok(0);
            }
            let n = file.read_at(&mut buf[..want], *pos)?;
            if n == 0 {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "the file became shorter while it was sent",
                ));
            }
            *pos += n as u64;
            Ok(n)
        }
        Body::Memory { data, pos } => {
            let n = (&data[*pos..]).read(buf)?;
            *pos += n;
            Ok(n)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(start: u64, bytes: Option<u64>) -> Request {
        Request {
            kind: Kind::File,
            identifier: "x".into(),
            start,
            bytes,
            compressed: false,
            recursive: false,
        }
    }

    #[test]
    fn ranges_are_checked_against_the_size() {
        assert_eq!(range(&req(0, None), 10), Ok((0, 10)));
        assert_eq!(range(&req(10, None), 10), Ok((10, 0)));
        assert_eq!(range(&req(4, Some(6)), 10), Ok((4, 6)));
        assert!(matches!(range(&req(11, None), 10), Err(Refusal::BadRange(_))));
        assert!(matches!(range(&req(4, Some(7)), 10), Err(Refusal::BadRange(_))));
        assert!(matches!(range(&req(u64::MAX, Some(2)), 10), Err(Refusal::BadRange(_))));
        assert!(matches!(range(&req(1, Some(u64::MAX)), 10), Err(Refusal::BadRange(_))));
    }

    #[test]
    fn memory_bodies_slice_the_range() {
        let s = memory(&req(2, Some(3)), b"abcdefg".to_vec(), Want::Leaves, "n".into()).unwrap();
        let mut body = s.body;
        let mut buf = [0u8; 10];
        assert_eq!(read_body(&mut body, &mut buf).unwrap(), 3);
        assert_eq!(&buf[..3], b"cde");
        assert_eq!(body.remaining(), 0);
    }
}
