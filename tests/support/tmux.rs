//! A private tmux server for tests that drive a console as a person would:
//! type with `send-keys`, read the screen with `capture-pane`. Every wait is
//! bounded; a missing tmux fails with a clear message.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// How long any one expected change of the screen may take.
pub const WAIT: Duration = Duration::from_secs(10);

/// A private tmux server (its own socket, no configuration), killed on drop.
pub struct Tmux {
    socket: PathBuf,
}

impl Tmux {
    pub fn start(dir: &Path) -> Self {
        match Command::new("tmux").arg("-V").output() {
            Ok(out) if out.status.success() => {}
            Ok(out) => panic!("`tmux -V` failed ({}): this test needs tmux", out.status),
            Err(e) => {
                panic!("tmux is not installed ({e}): this test needs it (apt-get install tmux)")
            }
        }
        Tmux { socket: dir.join("tmux.sock") }
    }

    /// Runs a tmux command; panics with its error output when it fails.
    pub fn run(&self, args: &[&str]) -> String {
        let out = Command::new("tmux")
            .arg("-f")
            .arg("/dev/null")
            .arg("-S")
            .arg(&self.socket)
            .args(args)
            .output()
            .expect("running tmux");
        assert!(
            out.status.success(),
            "tmux {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs the shell `command` in a new 120x50 window.
    pub fn window<'a>(&'a self, name: &'a str, command: &str) -> Pane<'a> {
        self.run(&["new-session", "-d", "-s", name, "-x", "120", "-y", "50", command]);
        // Keep the pane after the console exits, to read its exit status.
        self.run(&["set-option", "-t", name, "remain-on-exit", "on"]);
        Pane { tmux: self, name }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux").arg("-S").arg(&self.socket).arg("kill-server").output();
    }
}

/// Whether line `a` is directly followed by line `b` on the screen (trailing
/// blanks ignored).
pub fn follows(screen: &str, a: &str, b: &str) -> bool {
    let lines: Vec<&str> = screen.lines().map(str::trim_end).collect();
    lines.windows(2).any(|w| w[0] == a && w[1] == b)
}

/// Single-quotes a path for the shell tmux runs the command with.
pub fn quote(path: &Path) -> String {
    format!("'{}'", path.display().to_string().replace('\'', r"'\''"))
}

/// One console window.
pub struct Pane<'a> {
    pub tmux: &'a Tmux,
    pub name: &'a str,
}

impl Pane<'_> {
    /// The window's text, with 500 lines of scrollback.
    pub fn screen(&self) -> String {
        self.tmux.run(&["capture-pane", "-p", "-J", "-S", "-500", "-t", self.name])
    }

    /// Types `text` literally (no key names).
    pub fn text(&self, text: &str) {
        self.tmux.run(&["send-keys", "-t", self.name, "-l", text]);
    }

    /// Presses keys by tmux name (`Enter`, `Tab`, `C-c`).
    ///
    /// Only key names: tmux looks every argument up as a key name first, case
    /// ignored, so `send-keys end` sends the End key (ESC [4~), not the text
    /// `end`. Text goes through [`Pane::text`].
    pub fn keys(&self, keys: &[&str]) {
        for key in keys {
            assert!(
                key.starts_with(|c: char| c.is_ascii_uppercase()),
                "{key:?} is not a tmux key name (C-x, M-x, Enter, ...); type text with `text`"
            );
        }
        let mut args = vec!["send-keys", "-t", self.name];
        args.extend_from_slice(keys);
        self.tmux.run(&args);
    }

    /// Types `text` and presses Enter.
    pub fn line(&self, text: &str) {
        self.text(text);
        self.keys(&["Enter"]);
    }

    /// Waits until the screen satisfies `ready`; returns that screen.
    pub fn wait(&self, what: &str, ready: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let screen = self.screen();
            if ready(&screen) {
                return screen;
            }
            if Instant::now() > deadline {
                panic!("no {what} within {WAIT:?}; the console's screen:\n{screen}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Ctrl-D; waits for the console to exit and checks it succeeded.
    pub fn quit(&self) {
        self.keys(&["C-d"]);
        let deadline = Instant::now() + WAIT;
        let mut dead_since: Option<Instant> = None;
        loop {
            let state = self.tmux.run(&[
                "display-message",
                "-p",
                "-t",
                self.name,
                "#{pane_dead} #{pane_dead_status}",
            ]);
            match state.split_whitespace().collect::<Vec<_>>()[..] {
                ["1", "0"] => return,
                ["1", status] => {
                    panic!("the console exited with status {status}; screen:\n{}", self.screen())
                }
                // tmux may show the pane dead a moment before its status is
                // known, and under load sometimes never records the status
                // at all: a pane dead for a while has quit.
                ["1"] => match dead_since {
                    Some(t) if t.elapsed() > Duration::from_secs(2) => return,
                    Some(_) => std::thread::sleep(Duration::from_millis(50)),
                    None => dead_since = Some(Instant::now()),
                },
                _ if Instant::now() > deadline => {
                    panic!(
                        "the console {:?} did not quit on Ctrl-D (pane state {state:?}); screen:\n{}",
                        self.name,
                        self.screen()
                    )
                }
                _ => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }
}

/// The last non-empty line of a screen, without trailing blanks.
pub fn last_line(screen: &str) -> &str {
    screen.lines().map(str::trim_end).rfind(|l| !l.is_empty()).unwrap_or("")
}
