//! The client-client transfer commands: `GET`, `GFI` and `SND`.

use crate::proto::adc::header::{CommandName, Header};
use crate::proto::adc::message::Message;
use crate::proto::tth::Tth;

use super::view::{
    bad, check_command, inherent_view, number, opt_number, positional, put, put_flag, CommandView,
    ViewError,
};

// ---------------------------------------------------------------------------
// GET / GFI / SND

/// The namespaces of GET/GFI/SND that BASE and TIGR define.
pub mod transfer_type {
    /// File data; identifier `TTH/<root>` or a rootless name (`files.xml.bz2`).
    pub const FILE: &str = "file";
    /// A partial file list; identifier a directory such as `/` or `/share/`.
    pub const LIST: &str = "list";
    /// The Tiger tree leaves of a file; identifier `TTH/<root>`.
    pub const TTHL: &str = "tthl";
    /// The full file list, bzip2-compressed (BZIP).
    pub const FILE_LIST_BZ2: &str = "files.xml.bz2";
}

/// The TTH of a `TTH/<root>` identifier.
fn identifier_tth(identifier: &str) -> Option<Tth> {
    identifier.strip_prefix("TTH/")?.parse().ok()
}

/// Reads `type identifier start bytes` of GET/SND; `bytes` may be -1.
fn transfer_fields(
    msg: &Message,
    n: CommandName,
) -> Result<(&str, &str, u64, Option<u64>), ViewError> {
    let kind = positional(msg, n, 0, "type")?;
    let identifier = positional(msg, n, 1, "identifier")?;
    let start = positional(msg, n, 2, "start")?;
    let start = number(n, "start", start, "a byte offset")?;
    let bytes = positional(msg, n, 3, "bytes")?;
    let length =
        if bytes == "-1" { None } else { Some(number(n, "bytes", bytes, "a byte count or -1")?) };
    Ok((kind, identifier, start, length))
}

fn length_text(length: Option<u64>) -> String {
    length.map_or_else(|| "-1".to_owned(), |n| n.to_string())
}

/// `CGET type identifier start bytes`: request data.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Get<'a> {
    /// `file`, `list`, `tthl` (see [`transfer_type`]).
    pub kind: &'a str,
    /// `TTH/<root>`, `files.xml.bz2`, a directory for `list`...
    pub identifier: &'a str,
    /// First byte wanted.
    pub start: u64,
    /// Bytes wanted; `None` (`-1` on the wire) means up to the end.
    pub length: Option<u64>,
    /// `ZL1`: compress the data with zlib (ZLIG).
    pub compressed: bool,
    /// `RE1`: a recursive partial list.
    pub recursive: bool,
    /// `DB`: bytes of the file the requester already has (ADC-EXT).
    pub downloaded: Option<u64>,
}

impl Get<'_> {
    /// The TTH of a `TTH/<root>` identifier.
    pub fn tth(&self) -> Option<Tth> {
        identifier_tth(self.identifier)
    }
}

impl<'a> CommandView<'a> for Get<'a> {
    const NAME: CommandName = CommandName::GET;

    fn from_message(msg: &'a Message) -> Result<Get<'a>, ViewError> {
        check_command(msg, Self::NAME)?;
        let (kind, identifier, start, length) = transfer_fields(msg, Self::NAME)?;
        Ok(Get {
            kind,
            identifier,
            start,
            length,
            compressed: msg.flag("ZL"),
            recursive: msg.flag("RE"),
            downloaded: opt_number(msg, Self::NAME, "DB", "a byte count")?,
        })
    }

    fn to_message(&self, header: Header) -> Message {
        let mut m = Message::new(header, Self::NAME)
            .with(self.kind)
            .with(self.identifier)
            .with(&self.start.to_string())
            .with(&length_text(self.length));
        put_flag(&mut m, "ZL", self.compressed);
        put_flag(&mut m, "RE", self.recursive);
        put(&mut m, &mut String::new(), "DB", &self.downloaded);
        m
    }
}
inherent_view!(Get<'a>);

/// `CSND type identifier start bytes`: `bytes` of binary data follow the line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Snd<'a> {
    /// As in the GET.
    pub kind: &'a str,
    /// As in the GET.
    pub identifier: &'a str,
    /// First byte sent.
    pub start: u64,
    /// Exactly how many bytes follow (uncompressed, with `ZL1`).
    pub length: u64,
    /// `ZL1`: the data is zlib-compressed.
    pub compressed: bool,
}

impl Snd<'_> {
    /// The TTH of a `TTH/<root>` identifier.
    pub fn tth(&self) -> Option<Tth> {
        identifier_tth(self.identifier)
    }
}

impl<'a> CommandView<'a> for Snd<'a> {
    const NAME: CommandName = CommandName::SND;

    fn from_message(msg: &'a Message) -> Result<Snd<'a>, ViewError> {
        check_command(msg, Self::NAME)?;
        let (kind, identifier, start, length) = transfer_fields(msg, Self::NAME)?;
        let length =
            length.ok_or_else(|| bad(Self::NAME, "bytes", "-1", "the byte count being sent"))?;
        Ok(Snd { kind, identifier, start, length, compressed: msg.flag("ZL") })
    }

    fn to_message(&self, header: Header) -> Message {
        let mut m = Message::new(header, Self::NAME)
            .with(self.kind)
            .with(self.identifier)
            .with(&self.start.to_string())
            .with(&self.length.to_string());
        put_flag(&mut m, "ZL", self.compressed);
        m
    }
}
inherent_view!(Snd<'a>);

/// `CGFI type identifier`: ask for a RES about one file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Gfi<'a> {
    /// As in GET (`file`).
    pub kind: &'a str,
    /// Any namespace: `TTH/<root>` or a path.
    pub identifier: &'a str,
}

impl<'a> CommandView<'a> for Gfi<'a> {
    const NAME: CommandName = CommandName::GFI;

    fn from_message(msg: &'a Message) -> Result<Gfi<'a>, ViewError> {
        check_command(msg, Self::NAME)?;
        Ok(Gfi {
            kind: positional(msg, Self::NAME, 0, "type")?,
            identifier: positional(msg, Self::NAME, 1, "identifier")?,
        })
    }

    fn to_message(&self, header: Header) -> Message {
        Message::new(header, Self::NAME).with(self.kind).with(self.identifier)
    }
}
inherent_view!(Gfi<'a>);
