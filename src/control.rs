//! The control socket: consoles attached to a running client
//! (`dclua daemon`, `dclua attach`).
//!
//! A daemon listens on `<data folder>/control.sock`, a Unix stream socket
//! that only its owner may open: the file is made mode 0600, and every
//! connection's peer credentials (`SO_PEERCRED`) are checked against the
//! daemon's own user before anything is read (the file mode alone does not
//! stop root, nor a socket someone loosened). Each accepted connection is a
//! console: the attached side runs the very console of an interactive
//! client (editing, history, completion, multi-line chunks, Ctrl-C) over a
//! [`RemoteConsole`] backend, and the daemon side hands its chunks to the
//! same [`ConsoleBackend`] the local console uses. Several consoles may be
//! attached at once; they share the console's Lua state. Detaching (end of
//! input, Ctrl-D, a closed terminal) leaves the client running.
//!
//! # Wire format
//!
//! Frames in both directions: one kind byte, a space, the payload's length
//! in decimal, a newline, then the payload (UTF-8). At most
//! [`MAX_FRAME`] bytes of payload.
//!
//! | kind | from | payload |
//! |---|---|---|
//! | `E` | console | a chunk to run |
//! | `C` | console | a prefix to complete |
//! | `I` | console | nothing: interrupt the running chunk (Ctrl-C) |
//! | `V` | daemon | the chunk's values, one per line (empty: nothing to print) |
//! | `X` | daemon | the chunk's error; also a refusal before closing |
//! | `C` | daemon | completions, one per line |
//! | `O` | daemon | a line printed above the prompt (chat, events, progress) |
//! | `L` | daemon | a log line |
//!
//! Owns: the socket file, the wire format, the threads of both sides. Must
//! not: run Lua (chunks go to a [`ConsoleBackend`]), or touch the terminal
//! (the attached side prints through [`crate::console::printer`]).

use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;

use crate::console::{self, ConsoleBackend, EvalOutcome};

/// The socket's file name in the data folder.
pub const SOCKET_NAME: &str = "control.sock";

/// The largest payload of one frame.
pub const MAX_FRAME: usize = 16 << 20;

/// How long the attached side waits for completions before giving up.
const COMPLETE_TIMEOUT: Duration = Duration::from_secs(2);

/// The control socket's path in `data_dir`.
pub fn socket_path(data_dir: &Path) -> PathBuf {
    data_dir.join(SOCKET_NAME)
}

/// Writes one frame.
fn write_frame(w: &mut impl Write, kind: u8, payload: &str) -> io::Result<()> {
    let mut frame = Vec::with_capacity(payload.len() + 16);
    frame.push(kind);
    frame.extend_from_slice(format!(" {}\n", payload.len()).as_bytes());
    frame.extend_from_slice(payload.as_bytes());
    w.write_all(&frame)?;
    w.flush()
}

/// Reads one frame; `None` at a clean end of the stream.
fn read_frame(r: &mut impl BufRead) -> io::Result<Option<(u8, String)>> {
    let mut head = Vec::new();
    if r.by_ref().take(32).read_until(b'\n', &mut head)? == 0 {
        return Ok(None);
    }
    let bad = |what: &str| io::Error::new(io::ErrorKind::InvalidData, what.to_string());
    let text = std::str::from_utf8(&head).map_err(|_| bad("a frame header that is not text"))?;
    let (kind, len) = text
        .trim_end_matches('\n')
        .split_once(' ')
        .ok_or_else(|| bad("a frame header without a length"))?;
    let [kind] = kind.as_bytes() else { return Err(bad("a frame kind of more than one byte")) };
    let len: usize = len.parse().map_err(|_| bad("a frame length that is not a number"))?;
    if len > MAX_FRAME {
        return Err(bad("a frame longer than 16 MiB"));
    }
    let mut payload = vec![0; len];
    r.read_exact(&mut payload)?;
    let payload = String::from_utf8(payload).map_err(|_| bad("a frame that is not UTF-8"))?;
    Ok(Some((*kind, payload)))
}

/// The user id of the process at the other end of `stream`.
fn peer_uid(stream: &UnixStream) -> io::Result<(u32, i32)> {
    let mut cred = libc::ucred { pid: 0, uid: 0, gid: 0 };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: `cred` and `len` are valid for writes of the sizes given; the
    // descriptor is the stream's, open for the whole call.
    let rc = unsafe {
        libc::getsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut cred as *mut libc::ucred).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((cred.uid, cred.pid))
}

/// The daemon side: listens while it lives, and removes the socket file
/// when dropped.
pub struct ControlServer {
    path: PathBuf,
}

impl ControlServer {
    /// Listens on the control socket of `data_dir`, handing chunks to
    /// `backend`. The caller holds the data folder's lock, so a socket file
    /// already there is a dead daemon's and is replaced.
    pub fn start(data_dir: &Path, backend: Arc<dyn ConsoleBackend>) -> anyhow::Result<Self> {
        let path = socket_path(data_dir);
        match std::fs::remove_file(&path) {
            Ok(()) => log::info!("control socket: replaced a stale {}", path.display()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("removing {}", path.display())),
        }
        let listener = UnixListener::bind(&path)
            .with_context(|| format!("listening on the control socket {}", path.display()))?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
            .with_context(|| format!("making {} owner-only", path.display()))?;
        // SAFETY: geteuid has no preconditions and cannot fail.
        let me = unsafe { libc::geteuid() };
        std::thread::Builder::new()
            .name("dclua-control".into())
            .spawn(move || {
                for stream in listener.incoming() {
                    match stream {
                        Ok(s) => accept(s, me, backend.clone()),
                        Err(e) => log::warn!("control socket: accepting: {e}"),
                    }
                }
            })
            .context("starting the control socket's thread")?;
        log::info!("control socket: attach with `dclua attach` ({})", path.display());
        Ok(ControlServer { path })
    }

    /// The socket's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for ControlServer {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Checks who connected, then serves the console on its own threads.
fn accept(stream: UnixStream, me: u32, backend: Arc<dyn ConsoleBackend>) {
    match peer_uid(&stream) {
        Ok((uid, _)) if uid == me => {}
        Ok((uid, pid)) => {
            log::warn!("control socket: refused a console of user {uid} (process {pid}): only user {me} may attach");
            // On a thread of its own: the lingering must not hold up accepting.
            let _ = std::thread::Builder::new().name("dclua-refusal".into()).spawn(move || {
                let mut s = &stream;
                let _ = write_frame(&mut s, b'X', &format!("refused: only user {me} may attach"));
                linger(&stream);
            });
            return;
        }
        Err(e) => {
            log::warn!("control socket: refused a console whose user is unknown: {e}");
            return;
        }
    }
    let spawned = std::thread::Builder::new().name("dclua-attached".into()).spawn(move || {
        if let Err(e) = serve(stream, backend) {
            log::debug!("control socket: a console ended: {e}");
        }
    });
    if let Err(e) = spawned {
        log::warn!("control socket: no thread for a console: {e}");
    }
}

/// Closes a refused connection only once the other side has read the
/// refusal: on Linux, closing a Unix socket with unread data in it resets
/// the connection, and the other side's read fails before it reaches the
/// frame that says why. So stop writing, then drain what it sent (a few
/// frames at most, bounded in size and time) until it closes.
fn linger(stream: &UnixStream) {
    use std::io::Read;
    let _ = stream.shutdown(std::net::Shutdown::Write);
    let _ = stream.set_read_timeout(Some(std::time::Duration::from_secs(2)));
    let mut sink = [0u8; 4096];
    let mut left: usize = 64 * 1024;
    let mut r = stream;
    while left > 0 {
        match r.read(&mut sink) {
            Ok(0) | Err(_) => break,
            Ok(n) => left = left.saturating_sub(n),
        }
    }
}

/// One attached console: frames in, outcomes and printed lines out.
fn serve(stream: UnixStream, backend: Arc<dyn ConsoleBackend>) -> io::Result<()> {
    let writer = Arc::new(Mutex::new(stream.try_clone()?));
    log::info!("control socket: a console attached");
    // Lines printed above the prompt reach this console until it goes.
    let lines = console::printer().subscribe();
    {
        let writer = writer.clone();
        std::thread::Builder::new().name("dclua-attached-out".into()).spawn(move || {
            for (log, line) in lines {
                let Ok(mut w) = writer.lock() else { break };
                if write_frame(&mut *w, if log { b'L' } else { b'O' }, &line).is_err() {
                    break;
                }
            }
        })?;
    }
    let mut reader = BufReader::new(stream);
    let result = loop {
        let frame = match read_frame(&mut reader) {
            Ok(Some(f)) => f,
            Ok(None) => break Ok(()),
            Err(e) => break Err(e),
        };
        match frame {
            (b'E', chunk) => {
                // Waited for on its own thread: an `I` must get through
                // while the chunk runs.
                let outcome = backend.eval(chunk);
                let writer = writer.clone();
                std::thread::Builder::new().name("dclua-attached-eval".into()).spawn(
                    move || {
                        let outcome = outcome.recv().unwrap_or_else(|_| {
                            EvalOutcome::Error(
                                "the client stopped before the chunk finished".into(),
                            )
                        });
                        let (kind, text) = match outcome {
                            EvalOutcome::Values(v) => (b'V', v.join("\n")),
                            EvalOutcome::Error(e) => (b'X', e),
                        };
                        if let Ok(mut w) = writer.lock() {
                            let _ = write_frame(&mut *w, kind, &text);
                        }
                    },
                )?;
            }
            (b'C', prefix) => {
                let names = backend.complete(&prefix).join("\n");
                let Ok(mut w) = writer.lock() else { break Ok(()) };
                write_frame(&mut *w, b'C', &names)?;
            }
            (b'I', _) => backend.interrupt(),
            (kind, _) => {
                break Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("an unknown frame kind {:?}", char::from(kind)),
                ))
            }
        }
    };
    // Ends the output thread at its next line.
    if let Ok(w) = writer.lock() {
        let _ = w.shutdown(std::net::Shutdown::Both);
    }
    log::info!("control socket: a console detached");
    result
}

/// The attached side: a [`ConsoleBackend`] whose chunks run in the daemon.
pub struct RemoteConsole {
    writer: Mutex<UnixStream>,
    /// Where the running chunk's outcome goes.
    outcome: Arc<Mutex<Option<Sender<EvalOutcome>>>>,
    /// Where the pending completion goes.
    completions: Arc<Mutex<Option<Sender<Vec<String>>>>>,
    /// The daemon's side is gone: nothing more will be read.
    closed: Arc<AtomicBool>,
}

impl RemoteConsole {
    /// Attaches to the daemon of `data_dir`. Lines the daemon prints go to
    /// `print(is_a_log_line, line)` (the console's printer, or nowhere for
    /// `attach -e`).
    pub fn connect(
        data_dir: &Path,
        print: impl Fn(bool, &str) + Send + 'static,
    ) -> anyhow::Result<Arc<RemoteConsole>> {
        let path = socket_path(data_dir);
        let stream = UnixStream::connect(&path).with_context(|| {
            format!(
                "attaching to {} (is a `dclua daemon` running on the data folder {}?)",
                path.display(),
                data_dir.display()
            )
        })?;
        let console = Arc::new(RemoteConsole {
            writer: Mutex::new(stream.try_clone().context("attaching")?),
            outcome: Arc::new(Mutex::new(None)),
            completions: Arc::new(Mutex::new(None)),
            closed: Arc::new(AtomicBool::new(false)),
        });
        let outcome = console.outcome.clone();
        let completions = console.completions.clone();
        let closed = console.closed.clone();
        std::thread::Builder::new()
            .name("dclua-attach".into())
            .spawn(move || {
                let mut reader = BufReader::new(stream);
                loop {
                    let (kind, text) = match read_frame(&mut reader) {
                        Ok(Some(f)) => f,
                        Ok(None) => break,
                        Err(e) => {
                            print(
                                true,
                                &format!("dclua: the connection to the client failed: {e}"),
                            );
                            break;
                        }
                    };
                    match kind {
                        b'V' | b'X' => {
                            let o = if kind == b'V' {
                                let values = if text.is_empty() {
                                    Vec::new()
                                } else {
                                    text.split('\n').map(str::to_string).collect()
                                };
                                EvalOutcome::Values(values)
                            } else {
                                EvalOutcome::Error(text)
                            };
                            match outcome.lock().ok().and_then(|mut p| p.take()) {
                                Some(tx) => {
                                    let _ = tx.send(o);
                                }
                                // A refusal comes before any chunk.
                                None => print(true, &format!("dclua: {}", describe(&o))),
                            }
                        }
                        b'C' => {
                            if let Some(tx) = completions.lock().ok().and_then(|mut p| p.take()) {
                                let names = text.lines().map(str::to_string).collect();
                                let _ = tx.send(names);
                            }
                        }
                        b'O' => print(false, &text),
                        b'L' => print(true, &text),
                        _ => {}
                    }
                }
                // Whoever waits learns that nothing more will come.
                closed.store(true, Ordering::SeqCst);
                if let Ok(mut p) = outcome.lock() {
                    *p = None;
                }
            })
            .context("starting the attached console's reader")?;
        Ok(console)
    }

    fn send(&self, kind: u8, payload: &str) -> io::Result<()> {
        let mut w = self.writer.lock().map_err(|_| io::Error::other("a poisoned lock"))?;
        write_frame(&mut *w, kind, payload)
    }
}

fn describe(o: &EvalOutcome) -> String {
    match o {
        EvalOutcome::Values(v) => v.join("\n"),
        EvalOutcome::Error(e) => e.clone(),
    }
}

impl ConsoleBackend for RemoteConsole {
    fn eval(&self, chunk: String) -> Receiver<EvalOutcome> {
        let (tx, rx) = channel();
        if let Ok(mut p) = self.outcome.lock() {
            *p = Some(tx);
        }
        // A failed write is not the answer: the daemon may have said why it
        // closed (a refusal) in a frame the reader is about to deliver; the
        // reader drops the sender when the stream ends.
        let _ = self.send(b'E', &chunk);
        if self.closed.load(Ordering::SeqCst) {
            if let Some(tx) = self.outcome.lock().ok().and_then(|mut p| p.take()) {
                let _ = tx.send(EvalOutcome::Error("the client closed the connection".into()));
            }
        }
        rx
    }

    fn interrupt(&self) {
        let _ = self.send(b'I', "");
    }

    fn complete(&self, prefix: &str) -> Vec<String> {
        let (tx, rx) = channel();
        if let Ok(mut p) = self.completions.lock() {
            *p = Some(tx);
        }
        if self.send(b'C', prefix).is_err() {
            return Vec::new();
        }
        rx.recv_timeout(COMPLETE_TIMEOUT).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_read_back_and_bad_ones_are_refused() {
        let mut buf = Vec::new();
        for (k, p) in [(b'E', "return 1 +\n 2"), (b'I', ""), (b'O', "héllo")] {
            write_frame(&mut buf, k, p).unwrap();
        }
        let mut r = BufReader::new(&buf[..]);
        assert_eq!(read_frame(&mut r).unwrap(), Some((b'E', "return 1 +\n 2".to_string())));
        assert_eq!(read_frame(&mut r).unwrap(), Some((b'I', String::new())));
        assert_eq!(read_frame(&mut r).unwrap(), Some((b'O', "héllo".to_string())));
        assert_eq!(read_frame(&mut r).unwrap(), None);
        for bad in [&b"E\n"[..], b"EE 1\nx", b"E x\n", b"E 99999999999\n", b"E 5\nab", b"E 1\n\xff"]
        {
            assert!(read_frame(&mut BufReader::new(bad)).is_err(), "{bad:?}");
        }
    }
}
