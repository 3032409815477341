//! The Lua time budget and Ctrl-C, without an always-on instruction hook.
//!
//! Lua 5.4 traps every instruction while a count hook is set, whatever its
//! interval (a compute-bound loop ran 2.3× slower under the old
//! 100,000-instruction hook). So no hook is set normally. Instead:
//!
//! - The worker marks each resume it makes into Lua ([`Watch::run`]): an
//!   *epoch* counter, odd while a resume runs, plus the console chunk it
//!   belongs to. That is two atomic stores per resume; no clock is read.
//! - One watchdog thread per host samples the epoch. When the same resume
//!   has been running for longer than the time budget, or the console's
//!   Ctrl-C marked the chunk it runs, the watchdog writes a *verdict* (the
//!   epoch and the reason) and sends `SIGUSR1` to the worker thread.
//! - The signal handler does what `lua.c`'s `laction` does and nothing else
//!   (it must stay async-signal-safe): `lua_sethook` with a count of 1 on the
//!   innermost running `lua_State`. Hooks are per coroutine in 5.4, so the
//!   worker tracks that state on every resume, the script's own coroutines
//!   included (`native.co_resume`, the core of the prelude's
//!   `coroutine.resume`).
//! - The hook, now in ordinary worker context, raises "interrupted" or the
//!   budget error when the verdict is for the resume that runs; a hook left
//!   over from an earlier resume (a coroutine created while hooked inherits
//!   it) removes itself.
//!
//! Must not: set a hook from another thread (it races with the interpreter);
//! do more than `lua_sethook` in the signal handler; read the clock on the
//! worker's resume path.

use std::cell::Cell;
use std::ffi::{c_char, c_int, CStr, CString};
use std::ptr::{null, null_mut};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Once, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use mlua::ffi::{self, lua_Debug, lua_State};

/// The chunk number of every resume that is not a console chunk: never
/// interrupted by Ctrl-C.
pub(crate) const NOT_A_CHUNK: u64 = u64::MAX;

/// Verdict reasons (the low two bits of [`Shared::verdict`]).
const BUDGET: u64 = 1;
const INTERRUPT: u64 = 2;

/// The longest pause between two looks of the watchdog at a running resume.
const MAX_TICK: Duration = Duration::from_millis(50);
/// Quiet looks (no resume started or running) before the watchdog sleeps
/// until the worker's next resume wakes it.
const QUIET_TICKS: u32 = 20;

thread_local! {
    /// The innermost `lua_State` running on this thread (null outside Lua):
    /// where the signal handler sets the hook.
    static RUNNING: Cell<*mut lua_State> = const { Cell::new(null_mut()) };
    /// The watch of the resume running on this thread, for the hook.
    static ACTIVE: Cell<*const Shared> = const { Cell::new(null()) };
    /// The budget error of the script running on this thread.
    static BUDGET_MSG: Cell<*const c_char> = const { Cell::new(null()) };
}

/// What the worker and the watchdog thread share.
#[derive(Debug)]
pub(crate) struct Shared {
    /// Odd while a resume runs; bumped on each outermost entry and exit.
    epoch: AtomicU64,
    /// The console chunk the running resume belongs to.
    chunk: AtomicU64,
    /// Console chunks numbered up to this are interrupted (Ctrl-C).
    upto: AtomicU64,
    /// `(epoch << 2) | reason`: the resume the watchdog wants stopped.
    verdict: AtomicU64,
    /// The running resume was interrupted (its hook raised): `pcall` and the
    /// forwarding `coroutine.resume` re-raise instead of catching it.
    fired: AtomicBool,
    /// The worker thread (`pthread_t`), recorded on each outermost entry.
    worker: AtomicU64,
    /// The watchdog sleeps until the next resume wakes it.
    sleeping: AtomicBool,
    stop: AtomicBool,
    budget: Duration,
    thread: OnceLock<std::thread::Thread>,
}

impl Shared {
    /// Wakes the watchdog to look now (Ctrl-C, a resume after a quiet spell).
    fn poke(&self) {
        self.sleeping.store(false, Ordering::SeqCst);
        if let Some(t) = self.thread.get() {
            t.unpark();
        }
    }

    /// Ctrl-C for the console chunks numbered up to `last`.
    pub(crate) fn interrupt_upto(&self, last: u64) {
        self.upto.fetch_max(last, Ordering::SeqCst);
        self.poke();
    }

    /// Whether console chunk `chunk` was interrupted.
    pub(crate) fn interrupted(&self, chunk: u64) -> bool {
        chunk <= self.upto.load(Ordering::Relaxed)
    }

    /// The reason the running resume must stop, 0 when it may go on.
    fn verdict_now(&self) -> u64 {
        let v = self.verdict.load(Ordering::Acquire);
        if v >> 2 == self.epoch.load(Ordering::Relaxed) {
            v & 3
        } else {
            0
        }
    }
}

/// The worker's side of the time budget, owned by the host. Dropping it
/// stops the watchdog thread.
#[derive(Debug)]
pub(crate) struct Watch {
    shared: Arc<Shared>,
    depth: Cell<u32>,
    thread: Option<JoinHandle<()>>,
}

impl Watch {
    /// Starts the watchdog thread of a host whose resumes may each run for
    /// `budget`.
    pub(crate) fn start(budget: Duration) -> std::io::Result<Watch> {
        install_signal_handler()?;
        let shared = Arc::new(Shared {
            epoch: AtomicU64::new(0),
            chunk: AtomicU64::new(NOT_A_CHUNK),
            upto: AtomicU64::new(0),
            verdict: AtomicU64::new(0),
            fired: AtomicBool::new(false),
            worker: AtomicU64::new(0),
            sleeping: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            budget,
            thread: OnceLock::new(),
        });
        let for_thread = shared.clone();
        let thread = std::thread::Builder::new()
            .name("lua-watchdog".into())
            .spawn(move || watch(&for_thread))?;
        let _ = shared.thread.set(thread.thread().clone());
        Ok(Watch { shared, depth: Cell::new(0), thread: Some(thread) })
    }

    /// The part the console thread needs (Ctrl-C).
    pub(crate) fn shared(&self) -> Arc<Shared> {
        self.shared.clone()
    }

    /// Whether the running resume was interrupted (see [`Shared::fired`]).
    pub(crate) fn exhausted(&self) -> bool {
        self.shared.fired.load(Ordering::Relaxed)
    }

    /// Runs `f`, a resume of (or a call into) `state`, under the budget;
    /// `chunk` is the console chunk it belongs to ([`NOT_A_CHUNK`] if none)
    /// and `budget_msg` the error it fails with when over its budget.
    ///
    /// Nested calls count as part of the outermost one.
    pub(crate) fn run<R>(
        &self,
        state: *mut lua_State,
        chunk: u64,
        budget_msg: &CStr,
        f: impl FnOnce() -> R,
    ) -> R {
        let outer = self.depth.get() == 0;
        if outer {
            let s = &*self.shared;
            s.fired.store(false, Ordering::Relaxed);
            s.chunk.store(chunk, Ordering::Relaxed);
            // SAFETY: pthread_self has no preconditions.
            s.worker.store(unsafe { libc::pthread_self() } as u64, Ordering::Relaxed);
            let e = s.epoch.load(Ordering::Relaxed) + 1;
            // SeqCst pairs with the watchdog's `sleeping` then `epoch`: either
            // it sees this resume or we see that it sleeps.
            s.epoch.store(e, Ordering::SeqCst);
            if s.sleeping.load(Ordering::SeqCst) {
                s.poke();
            }
        }
        self.depth.set(self.depth.get() + 1);
        let _exit = Exit {
            watch: self,
            outer,
            running: RUNNING.replace(state),
            active: ACTIVE.replace(Arc::as_ptr(&self.shared)),
            msg: BUDGET_MSG.replace(budget_msg.as_ptr()),
        };
        f()
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        self.shared.poke();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Leaves a [`Watch::run`] (also when `f` panics).
struct Exit<'a> {
    watch: &'a Watch,
    outer: bool,
    running: *mut lua_State,
    active: *const Shared,
    msg: *const c_char,
}

impl Drop for Exit<'_> {
    fn drop(&mut self) {
        RUNNING.set(self.running);
        ACTIVE.set(self.active);
        BUDGET_MSG.set(self.msg);
        let w = self.watch;
        w.depth.set(w.depth.get() - 1);
        if self.outer {
            let s = &*w.shared;
            s.epoch.store(s.epoch.load(Ordering::Relaxed) + 1, Ordering::Release);
            s.fired.store(false, Ordering::Relaxed);
        }
    }
}

/// The budget error of a script, as the hook raises it.
pub(crate) fn budget_message(script: &str, budget: Duration) -> CString {
    let text = format!(
        "script {script}: ran over its time budget ({} s) without waiting; interrupted \
         (a loop that never yields? dc.sleep(0) lets other work run)",
        budget.as_secs_f64()
    );
    CString::new(text.replace('\0', "")).unwrap_or_default()
}

/// The watchdog thread.
fn watch(s: &Shared) {
    let tick = (s.budget / 4).clamp(Duration::from_millis(1), MAX_TICK);
    let mut seen = 0u64;
    let mut seen_at = Instant::now();
    let mut quiet = 0u32;
    while !s.stop.load(Ordering::SeqCst) {
        let e = s.epoch.load(Ordering::SeqCst);
        if e % 2 == 1 {
            quiet = 0;
            let chunk = s.chunk.load(Ordering::Relaxed);
            // The chunk read belongs to epoch `e` only if it did not move.
            if s.epoch.load(Ordering::SeqCst) == e {
                if e != seen {
                    seen = e;
                    seen_at = Instant::now();
                }
                let reason = if s.interrupted(chunk) {
                    INTERRUPT
                } else if seen_at.elapsed() >= s.budget {
                    BUDGET
                } else {
                    0
                };
                if reason != 0 {
                    s.verdict.store((e << 2) | reason, Ordering::Release);
                    // Sent again on every look while the same resume runs: a
                    // hook set on a state that stopped running a moment
                    // later is never reached.
                    let worker = s.worker.load(Ordering::Relaxed) as libc::pthread_t;
                    // SAFETY: the worker is inside a resume (odd epoch), so
                    // its thread is alive; the handler is installed.
                    unsafe { libc::pthread_kill(worker, libc::SIGUSR1) };
                }
            }
        } else if e != seen {
            seen = e;
            quiet = 0;
        } else {
            quiet += 1;
        }
        if quiet >= QUIET_TICKS {
            s.sleeping.store(true, Ordering::SeqCst);
            if s.epoch.load(Ordering::SeqCst) == e && !s.stop.load(Ordering::SeqCst) {
                std::thread::park();
            }
            s.sleeping.store(false, Ordering::SeqCst);
            quiet = 0;
        } else {
            std::thread::park_timeout(tick);
        }
    }
}

fn install_signal_handler() -> std::io::Result<()> {
    static INSTALL: Once = Once::new();
    static mut FAILED: c_int = 0;
    INSTALL.call_once(|| {
        // SAFETY: a zeroed sigaction is valid; the handler is an
        // async-signal-safe extern "C" fn.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_signal as *const () as libc::sighandler_t;
            action.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut action.sa_mask);
            if libc::sigaction(libc::SIGUSR1, &action, null_mut()) != 0 {
                FAILED = *libc::__errno_location();
            }
        }
    });
    // SAFETY: written only inside call_once, which has completed.
    match unsafe { FAILED } {
        0 => Ok(()),
        errno => Err(std::io::Error::from_raw_os_error(errno)),
    }
}

/// `SIGUSR1` on the worker: arm the hook on the running state, as `lua.c`
/// does for SIGINT. Nothing else here: this interrupts arbitrary code.
extern "C" fn on_signal(_: c_int) {
    // A const-initialized thread-local without destructor: a plain TLS read.
    let l = RUNNING.with(Cell::get);
    if !l.is_null() {
        // SAFETY: `l` is the state running on this thread (kept alive by the
        // resume that recorded it); lua_sethook is signal-safe by design.
        unsafe {
            ffi::lua_sethook(
                l,
                Some(hook),
                ffi::LUA_MASKCALL | ffi::LUA_MASKRET | ffi::LUA_MASKCOUNT,
                1,
            );
        };
    }
}

/// The armed hook: raises the verdict's error, or removes itself when the
/// verdict is not for the resume that runs now. Stays armed while it raises,
/// so a `pcall`, an error handler or a `__close` cannot keep the loop going.
unsafe extern "C-unwind" fn hook(l: *mut lua_State, _: *mut lua_Debug) {
    let shared = ACTIVE.with(Cell::get);
    // SAFETY: ACTIVE points into the Arc of the Watch whose run() is on the
    // stack below us.
    let reason = if shared.is_null() { 0 } else { unsafe { (*shared).verdict_now() } };
    if reason == 0 {
        unsafe { ffi::lua_sethook(l, None, 0, 0) };
        return;
    }
    unsafe { (*shared).fired.store(true, Ordering::Relaxed) };
    let msg = match BUDGET_MSG.with(Cell::get) {
        p if reason == BUDGET && !p.is_null() => p,
        _ if reason == BUDGET => c"ran over its time budget without waiting; interrupted".as_ptr(),
        _ => c"interrupted".as_ptr(),
    };
    // SAFETY: raising from a hook is allowed; this frame owns nothing that
    // needs dropping, so the longjmp skips no destructor.
    unsafe {
        ffi::lua_pushstring(l, msg);
        ffi::lua_error(l);
    }
}

/// `native.co_resume(co, ...)`: `coroutine.resume` that records `co` as the
/// innermost running state while it runs (see the module doc). Same results
/// as Lua's: `true, values...` or `false, message`.
pub(crate) unsafe extern "C-unwind" fn co_resume(l: *mut lua_State) -> c_int {
    unsafe {
        let co = ffi::lua_tothread(l, 1);
        if co.is_null() {
            ffi::lua_pushboolean(l, 0);
            ffi::lua_pushstring(l, c"bad argument #1 to 'resume' (coroutine expected)".as_ptr());
            return 2;
        }
        let narg = ffi::lua_gettop(l) - 1;
        if ffi::lua_checkstack(co, narg) == 0 {
            ffi::lua_pushboolean(l, 0);
            ffi::lua_pushstring(l, c"too many arguments to resume".as_ptr());
            return 2;
        }
        ffi::lua_xmove(l, co, narg);
        let prev = RUNNING.replace(co);
        let mut nres: c_int = 0;
        // lua_resume catches every error of the coroutine: it returns here.
        let status = ffi::lua_resume(co, l, narg, &mut nres);
        RUNNING.set(prev);
        if status == ffi::LUA_OK || status == ffi::LUA_YIELD {
            if ffi::lua_checkstack(l, nres + 1) == 0 {
                ffi::lua_pop(co, nres);
                ffi::lua_pushboolean(l, 0);
                ffi::lua_pushstring(l, c"too many results to resume".as_ptr());
                return 2;
            }
            ffi::lua_pushboolean(l, 1);
            ffi::lua_xmove(co, l, nres);
            nres + 1
        } else {
            ffi::lua_pushboolean(l, 0);
            ffi::lua_xmove(co, l, 1);
            2
        }
    }
}

/// The `lua_State` a script's plain calls (not coroutine resumes) run on:
/// its main state.
pub(crate) fn main_state(lua: &mlua::Lua) -> mlua::Result<*mut lua_State> {
    let mut state = null_mut();
    // SAFETY: the closure only records the pointer.
    unsafe { lua.exec_raw::<()>((), |s| state = s)? };
    Ok(state)
}
