//! The search commands: `SCH` and its results, `RES`.

use crate::proto::adc::header::{CommandName, Header};
use crate::proto::adc::message::Message;
use crate::proto::tth::Tth;

use super::view::{
    bad, check_command, inherent_view, missing, number, opt_number, opt_tth, put, CommandView,
    ViewError, WireValue,
};

// ---------------------------------------------------------------------------
// SCH

/// SCH `TY`: what kind of entry is searched for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FileType {
    /// `1`: files only.
    File,
    /// `2`: directories only.
    Directory,
}

impl FileType {
    fn value(self) -> u64 {
        match self {
            FileType::File => 1,
            FileType::Directory => 2,
        }
    }
}

impl WireValue for FileType {
    fn write_to(&self, out: &mut String) {
        self.value().write_to(out);
    }
}

/// `SCH`: a search. Terms are matched case-insensitively against full paths.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Sch<'a> {
    /// `AN`: every one must appear.
    pub include: Vec<&'a str>,
    /// `NO`: none may appear.
    pub exclude: Vec<&'a str>,
    /// `EX`: the extension must be one of these (without the dot).
    pub extensions: Vec<&'a str>,
    /// `LE`: size at most.
    pub max_size: Option<u64>,
    /// `GE`: size at least.
    pub min_size: Option<u64>,
    /// `EQ`: size exactly.
    pub exact_size: Option<u64>,
    /// `TO`: token to copy into every result.
    pub token: Option<&'a str>,
    /// `TY`: files or directories only.
    pub file_type: Option<FileType>,
    /// `TR`: a TTH root (TIGR).
    pub tth: Option<Tth>,
    /// `TD`: tree depth (TIGR).
    pub tree_depth: Option<u32>,
    /// `GR`: extension groups, a sum of flags (SEGA: 1 audio, 2 compressed,
    /// 4 document, 8 executable, 16 picture, 32 video).
    pub groups: Option<u32>,
    /// `RX`: extensions excluded from the groups (SEGA).
    pub excluded_extensions: Vec<&'a str>,
}

impl<'a> CommandView<'a> for Sch<'a> {
    const NAME: CommandName = CommandName::SCH;

    fn from_message(msg: &'a Message) -> Result<Sch<'a>, ViewError> {
        check_command(msg, Self::NAME)?;
        let n = Self::NAME;
        const SIZE: &str = "a size in bytes";
        let mut sch = Sch::default();
        for (name, value) in msg.named() {
            match name {
                "AN" => sch.include.push(value),
                "NO" => sch.exclude.push(value),
                "EX" => sch.extensions.push(value),
                "RX" => sch.excluded_extensions.push(value),
                "LE" => sch.max_size = Some(number(n, "LE", value, SIZE)?),
                "GE" => sch.min_size = Some(number(n, "GE", value, SIZE)?),
                "EQ" => sch.exact_size = Some(number(n, "EQ", value, SIZE)?),
                "TO" => sch.token = Some(value),
                "TY" => {
                    sch.file_type = Some(match value {
                        "1" => FileType::File,
                        "2" => FileType::Directory,
                        _ => return Err(bad(n, "TY", value, "1 (file) or 2 (directory)")),
                    });
                }
                "TR" => {
                    sch.tth =
                        Some(value.parse().map_err(|_| bad(n, "TR", value, "a 39-character TTH"))?);
                }
                "TD" => sch.tree_depth = Some(number(n, "TD", value, "a tree depth")?),
                "GR" => sch.groups = Some(number(n, "GR", value, "a sum of group flags")?),
                _ => {}
            }
        }
        Ok(sch)
    }

    /// Fields go out as `TO` first (as DC++ and eiskaltdcpp do), then the
    /// terms and limits.
    fn to_message(&self, header: Header) -> Message {
        let mut m = Message::new(header, Self::NAME);
        let b = &mut String::new();
        put(&mut m, b, "TO", &self.token);
        for t in &self.include {
            m.push_named("AN", t);
        }
        for t in &self.exclude {
            m.push_named("NO", t);
        }
        for t in &self.extensions {
            m.push_named("EX", t);
        }
        put(&mut m, b, "GE", &self.min_size);
        put(&mut m, b, "LE", &self.max_size);
        put(&mut m, b, "EQ", &self.exact_size);
        put(&mut m, b, "TY", &self.file_type);
        put(&mut m, b, "TR", &self.tth);
        put(&mut m, b, "TD", &self.tree_depth);
        put(&mut m, b, "GR", &self.groups);
        for t in &self.excluded_extensions {
            m.push_named("RX", t);
        }
        m
    }
}
inherent_view!(Sch<'a>);

// ---------------------------------------------------------------------------
// RES

/// `RES`: a search result (`URES` by UDP, `DRES` through the hub, `CRES` in
/// answer to `CGFI`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Res<'a> {
    /// `FN`: full path in the share, `/`-separated; directories end in `/`.
    pub path: &'a str,
    /// `SI`: size in bytes (of all files below, for a directory).
    pub size: Option<u64>,
    /// `SL`: free slots of the responder.
    pub slots: Option<u64>,
    /// `TR`: TTH root (eiskaltdcpp sends all `A`s for directories).
    pub tth: Option<Tth>,
    /// `TO`: the search's token.
    pub token: Option<&'a str>,
    /// `TD`: tree depth.
    pub tree_depth: Option<u32>,
}

impl Res<'_> {
    /// Whether the result is a directory (its path ends in `/`).
    pub fn is_directory(&self) -> bool {
        self.path.ends_with('/')
    }
}

impl<'a> CommandView<'a> for Res<'a> {
    const NAME: CommandName = CommandName::RES;

    fn from_message(msg: &'a Message) -> Result<Res<'a>, ViewError> {
        check_command(msg, Self::NAME)?;
        let n = Self::NAME;
        Ok(Res {
            path: msg.get("FN").ok_or_else(|| missing(n, "FN"))?,
            size: opt_number(msg, n, "SI", "a size in bytes")?,
            slots: opt_number(msg, n, "SL", "a slot count")?,
            tth: opt_tth(msg, n, "TR")?,
            token: msg.get("TO"),
            tree_depth: opt_number(msg, n, "TD", "a tree depth")?,
        })
    }

    /// Fields go out in eiskaltdcpp's order: SI SL FN TR TO (then TD).
    fn to_message(&self, header: Header) -> Message {
        let mut m = Message::new(header, Self::NAME);
        let b = &mut String::new();
        put(&mut m, b, "SI", &self.size);
        put(&mut m, b, "SL", &self.slots);
        m.push_named("FN", self.path);
        put(&mut m, b, "TR", &self.tth);
        put(&mut m, b, "TO", &self.token);
        put(&mut m, b, "TD", &self.tree_depth);
        m
    }
}
inherent_view!(Res<'a>);
