//! The form of the `dc` API's description: what a function, an event and a
//! field are described by. Each namespace describes its own part next to its
//! implementation; [`api`](super::api) composes them (with `concat`) into
//! the one description that generates the LuaLS stubs, completion and help.
//! Plain data: it depends on nothing.

/// One function or method of the API.
#[derive(Debug, Clone, Copy)]
pub struct ApiFn {
    /// `dc.sleep`, `dc.scripts.load`, or `dc.Job:wait` for a method.
    pub path: &'static str,
    /// `(name, LuaLS type, description)`.
    pub params: &'static [(&'static str, &'static str, &'static str)],
    /// `(LuaLS type, description)`.
    pub returns: &'static [(&'static str, &'static str)],
    /// What it does.
    pub doc: &'static str,
    /// It waits (yields to the pool): only callable from a coroutine job.
    pub waits: bool,
}

/// One event of the API.
#[derive(Debug, Clone, Copy)]
pub struct ApiEvent {
    /// The name given to `dc.on` and `dc.wait`.
    pub name: &'static str,
    /// When it happens.
    pub doc: &'static str,
    /// Fields of the event table: `(name, LuaLS type, description)`.
    pub fields: &'static [(&'static str, &'static str, &'static str)],
    /// Whether returning true from a handler means something (consumes it).
    pub consumable: bool,
}

/// A plain value field of a table (`dc.version`).
#[derive(Debug, Clone, Copy)]
pub struct ApiField {
    /// Its path.
    pub path: &'static str,
    /// LuaLS type.
    pub ty: &'static str,
    /// What it holds.
    pub doc: &'static str,
}

/// The entries of `parts`, in order, as one array (`N`: their total count,
/// from [`count`]); for composing the description at compile time.
pub const fn concat<T: Copy, const N: usize>(parts: &[&[T]], fill: T) -> [T; N] {
    let mut out = [fill; N];
    let (mut i, mut p) = (0, 0);
    while p < parts.len() {
        let mut j = 0;
        while j < parts[p].len() {
            out[i] = parts[p][j];
            i += 1;
            j += 1;
        }
        p += 1;
    }
    assert!(i == N, "concat: N is not the count of the parts' entries");
    out
}

/// The count of entries in `parts`.
pub const fn count<T>(parts: &[&[T]]) -> usize {
    let (mut n, mut p) = (0, 0);
    while p < parts.len() {
        n += parts[p].len();
        p += 1;
    }
    n
}
