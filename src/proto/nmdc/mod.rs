//! The NMDC codec: every command a client meets on a hub or in a
//! client-client connection, as typed [`Message`]s, and back.
//!
//! - [`parse`] turns one *frame* (the bytes between two `|`, without the `|`;
//!   framing is done by the connection layer) into a [`Message`]. It never
//!   fails and never panics: an unknown command becomes [`Message::Raw`] with
//!   no error, and a known command that is malformed becomes [`Message::Raw`]
//!   carrying a [`ParseError`] that says what was wrong.
//! - [`encode`] / [`encode_into`] write the canonical wire form of a message,
//!   `|` included. The result is always exactly one frame: a `|` inside a
//!   field is escaped, so no field can inject a command. Structure is the
//!   caller's job otherwise: a nick with a space or a `$` is sent as is and
//!   reads back differently.
//! - For every frame `f`, `encode(&parse(f))` is canonical: parsing it again
//!   gives the same message (the tests check this on random input).
//!
//! Text is decoded with the hub's charset *after* framing (CP1252,
//! [`encoding_rs::WINDOWS_1252`], is the protocol's historical default;
//! Russian hubs use CP1251, modern ones often UTF-8); invalid bytes become
//! U+FFFD. `$Lock`'s lock and `$Key`'s key are bytes and never pass through a
//! charset. `$ADCGET`/`$ADCSND` parameters are always UTF-8.
//!
//! One file per message family, as in go-dc: [`lock`] (`$Lock`, `$Key`),
//! [`escape`](mod@escape) (HTML and old-ADC escaping), [`chat`] (main chat, `$To:`),
//! [`user`] (`$MyINFO`, nick lists, `$UserIP`), [`search`] (`$Search`,
//! `$SR`), [`conn`] (connection requests and client-client commands), [`hub`]
//! (`$UserCommand`) and [`zpipe`] (the `$ZOn` inflater).
//!
//! This module owns the wire format only: it never does I/O, never reads a
//! clock, and knows nothing of sessions or Lua.

pub mod chat;
pub mod conn;
pub mod escape;
pub mod hub;
pub mod lock;
pub mod search;
mod text;
pub mod user;
pub mod zpipe;

use encoding_rs::Encoding;

pub use chat::{Chat, PrivateMessage};
pub use conn::{AdcTransfer, ConnectToMe, Direction, NatRole, Way};
pub use escape::{escape, unescape};
pub use hub::UserCommand;
pub use lock::{lock_to_key, Lock};
pub use search::{ResultHub, Search, SearchPattern, SearchResult, SearchSource, SizeLimit};
pub use user::{HubCounts, MyInfo, Tag, UserIp};
pub use zpipe::{Inflated, ZPipe, ZPipeError};

use text::{
    decode, decode_unescaped, effective_charset, parse_u32, push_bytes, push_escaped, push_text,
};

/// One NMDC message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// An empty frame (a bare `|`), sent as a keep-alive.
    KeepAlive,
    /// `$Lock <lock> Pk=<pk>`: the handshake challenge (hub and C-C).
    Lock(Lock),
    /// `$Key <key>`: the answer to a lock, as raw wire bytes (already
    /// `/%DCN000%/`-escaped; see [`lock_to_key`]).
    Key(Vec<u8>),
    /// `$Supports <feature> ...`: the extensions a peer supports.
    Supports(Vec<String>),
    /// `$ValidateNick <nick>`: the client asks for a nick.
    ValidateNick(String),
    /// `$GetPass [salt]`: the hub asks for a password; the salt comes with
    /// the SaltPass extension.
    GetPass(Option<String>),
    /// `$MyPass <password>`: plain, or base32(Tiger(password + salt)).
    MyPass(String),
    /// `$BadPass`: wrong password; the hub disconnects.
    BadPass,
    /// `$ValidateDenide [nick]`: the nick is taken or reserved (sic).
    ValidateDenide(String),
    /// `$Hello <nick>`: a nick was accepted (ours) or a user joined.
    Hello(String),
    /// `$Version <version>`: the client's protocol version (`1,0091`).
    Version(String),
    /// `$GetNickList`: the client asks for the user list.
    GetNickList,
    /// `$MyINFO $ALL ...`: a user's description, tag, share.
    MyInfo(MyInfo),
    /// `$NickList a$$b$$`: all nicks.
    NickList(Vec<String>),
    /// `$OpList a$$b$$`: operators.
    OpList(Vec<String>),
    /// `$BotList a$$b$$`: bots.
    BotList(Vec<String>),
    /// `$Quit <nick>`: a user left.
    Quit(String),
    /// `<nick> text`: main chat (or hub text without a nick).
    Chat(Chat),
    /// `$To: <to> From: <from> $<nick> text`: a private message.
    PrivateMessage(PrivateMessage),
    /// `$Search ...`: a search request.
    Search(Search),
    /// `$SR ...`: a search result (through the hub or by UDP).
    SearchResult(SearchResult),
    /// `$ConnectToMe ...`: connect to me for a transfer.
    ConnectToMe(ConnectToMe),
    /// `$RevConnectToMe <from> <to>`: a passive user asks `to` to send a
    /// `$ConnectToMe`.
    RevConnectToMe {
        /// The passive user asking.
        from: String,
        /// The user asked to connect.
        to: String,
    },
    /// `$ForceMove <address>`: the hub redirects us.
    ForceMove(String),
    /// `$UserIP nick ip$$...` (answer, or UserIP2 push) or `$UserIP nick`
    /// (request).
    UserIp(Vec<UserIp>),
    /// `$HubName <name>` (not unique; sometimes carries a topic).
    HubName(String),
    /// `$HubTopic <topic>`.
    HubTopic(String),
    /// `$UserCommand ...`: a hub menu entry.
    UserCommand(UserCommand),
    /// `$ZOn`: the rest of the stream is zlib until the stream ends (see
    /// [`ZPipe`]).
    ZOn,
    /// `$GetINFO <target> <from>`: asks the hub for `target`'s `$MyINFO`.
    GetInfo {
        /// The user whose info is wanted.
        target: String,
        /// The asking user.
        from: String,
    },
    /// `$LogedIn [nick]` (sic): sent by hubs after login (to operators, or to
    /// everyone, without a nick).
    LogedIn(String),
    /// `$HubIsFull`.
    HubIsFull,
    /// `$MyNick <nick>`: first command of a client-client connection.
    MyNick(String),
    /// `$Direction <Download|Upload> <n>` (C-C).
    Direction(Direction),
    /// `$ADCGET ...` (C-C request).
    AdcGet(AdcTransfer),
    /// `$ADCSND ...` (C-C answer, followed by the data).
    AdcSnd(AdcTransfer),
    /// `$MaxedOut [queue position]`: no free slot (C-C).
    MaxedOut(Option<u32>),
    /// `$Error <message>` (C-C, e.g. `File Not Available`).
    Error(String),
    /// `$Failed <message>`.
    Failed(String),
    /// Anything else, kept byte for byte.
    Raw(Raw),
}

/// A frame kept as is: an unknown command (`error` is `None`) or a known
/// command that could not be parsed (`error` says why).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Raw {
    /// The frame, without the `|`.
    pub frame: Vec<u8>,
    /// Why a known command was rejected; `None` for an unknown command.
    pub error: Option<ParseError>,
}

impl Raw {
    /// The command name (`$MCTo:`, `$BotINFO`, ...): the bytes before the
    /// first space of a frame that starts with `$`; empty otherwise.
    pub fn command(&self) -> &[u8] {
        if self.frame.first() != Some(&b'$') {
            return &[];
        }
        let end = self.frame.iter().position(|&b| b == b' ').unwrap_or(self.frame.len());
        &self.frame[..end]
    }
}

/// Why a known command was kept as [`Message::Raw`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed {command} frame: {reason}")]
pub struct ParseError {
    /// The command name, e.g. `$SR`.
    pub command: String,
    /// What was wrong.
    pub reason: &'static str,
}

impl Message {
    /// The variant name (`"MyInfo"`, `"Chat"`, `"Raw"`, ...), for logs and
    /// test vectors.
    pub fn kind(&self) -> &'static str {
        match self {
            Message::KeepAlive => "KeepAlive",
            Message::Lock(_) => "Lock",
            Message::Key(_) => "Key",
            Message::Supports(_) => "Supports",
            Message::ValidateNick(_) => "ValidateNick",
            Message::GetPass(_) => "GetPass",
            Message::MyPass(_) => "MyPass",
            Message::BadPass => "BadPass",
            Message::ValidateDenide(_) => "ValidateDenide",
            Message::Hello(_) => "Hello",
            Message::Version(_) => "Version",
            Message::GetNickList => "GetNickList",
            Message::MyInfo(_) => "MyInfo",
            Message::NickList(_) => "NickList",
            Message::OpList(_) => "OpList",
            Message::BotList(_) => "BotList",
            Message::Quit(_) => "Quit",
            Message::Chat(_) => "Chat",
            Message::PrivateMessage(_) => "PrivateMessage",
            Message::Search(_) => "Search",
            Message::SearchResult(_) => "SearchResult",
            Message::ConnectToMe(_) => "ConnectToMe",
            Message::RevConnectToMe { .. } => "RevConnectToMe",
            Message::ForceMove(_) => "ForceMove",
            Message::UserIp(_) => "UserIp",
            Message::HubName(_) => "HubName",
            Message::HubTopic(_) => "HubTopic",
            Message::UserCommand(_) => "UserCommand",
            Message::ZOn => "ZOn",
            Message::GetInfo { .. } => "GetInfo",
            Message::LogedIn(_) => "LogedIn",
            Message::HubIsFull => "HubIsFull",
            Message::MyNick(_) => "MyNick",
            Message::Direction(_) => "Direction",
            Message::AdcGet(_) => "AdcGet",
            Message::AdcSnd(_) => "AdcSnd",
            Message::MaxedOut(_) => "MaxedOut",
            Message::Error(_) => "Error",
            Message::Failed(_) => "Failed",
            Message::Raw(_) => "Raw",
        }
    }
}

/// Parses one frame (the bytes between two `|`, without them).
///
/// Text fields are decoded with `charset` (a charset that is not
/// ASCII-compatible falls back to CP1252, since NMDC framing needs ASCII
/// delimiters). Never fails: see [`Message::Raw`].
pub fn parse(frame: &[u8], charset: &'static Encoding) -> Message {
    let cs = effective_charset(charset);
    if frame.is_empty() {
        return Message::KeepAlive;
    }
    if frame[0] != b'$' {
        return Message::Chat(Chat::parse(frame, cs));
    }
    let (name, args) = match frame.iter().position(|&b| b == b' ') {
        Some(i) => (&frame[..i], &frame[i + 1..]),
        None => (frame, &[][..]),
    };
    let parsed: Result<Message, &'static str> = match name {
        b"$MyINFO" => MyInfo::parse(args, cs).map(Message::MyInfo),
        b"$Search" => Search::parse(args, cs).map(Message::Search),
        b"$SR" => SearchResult::parse(args, cs).map(Message::SearchResult),
        b"$Quit" => Ok(Message::Quit(decode(args, cs))),
        b"$Hello" => Ok(Message::Hello(decode(args, cs))),
        b"$To:" => PrivateMessage::parse(args, cs).map(Message::PrivateMessage),
        b"$ConnectToMe" => ConnectToMe::parse(args, cs).map(Message::ConnectToMe),
        b"$RevConnectToMe" => parse_pair(args, cs)
            .map(|(from, to)| Message::RevConnectToMe { from, to })
            .ok_or("expected <from> <to>"),
        b"$UserIP" => Ok(Message::UserIp(user::parse_user_ips(args, cs))),
        b"$NickList" => Ok(Message::NickList(user::parse_nick_list(args, cs))),
        b"$OpList" => Ok(Message::OpList(user::parse_nick_list(args, cs))),
        b"$BotList" => Ok(Message::BotList(user::parse_nick_list(args, cs))),
        b"$Lock" => Ok(Message::Lock(Lock::parse(args, cs))),
        b"$Key" => Ok(Message::Key(args.to_vec())),
        b"$Supports" => Ok(Message::Supports(
            args.split(|&b| b == b' ').filter(|f| !f.is_empty()).map(|f| decode(f, cs)).collect(),
        )),
        b"$ValidateNick" => Ok(Message::ValidateNick(decode(args, cs))),
        b"$GetPass" => Ok(Message::GetPass((!args.is_empty()).then(|| decode(args, cs)))),
        b"$MyPass" => Ok(Message::MyPass(decode(args, cs))),
        b"$BadPass" => Ok(Message::BadPass),
        b"$ValidateDenide" => Ok(Message::ValidateDenide(decode(args, cs))),
        b"$Version" => Ok(Message::Version(decode(args, cs))),
        b"$GetNickList" => Ok(Message::GetNickList),
        b"$ForceMove" => Ok(Message::ForceMove(decode(args, cs))),
        b"$HubName" => Ok(Message::HubName(decode_unescaped(args, cs))),
        b"$HubTopic" => Ok(Message::HubTopic(decode_unescaped(args, cs))),
        b"$UserCommand" => UserCommand::parse(args, cs).map(Message::UserCommand),
        b"$ZOn" => Ok(Message::ZOn),
        b"$GetINFO" => parse_pair(args, cs)
            .map(|(target, from)| Message::GetInfo { target, from })
            .ok_or("expected <target> <from>"),
        b"$LogedIn" => Ok(Message::LogedIn(decode(args, cs))),
        b"$HubIsFull" => Ok(Message::HubIsFull),
        b"$MyNick" => Ok(Message::MyNick(decode(args, cs))),
        b"$Direction" => Direction::parse(args).map(Message::Direction),
        b"$ADCGET" => AdcTransfer::parse(args).map(Message::AdcGet),
        b"$ADCSND" => AdcTransfer::parse(args).map(Message::AdcSnd),
        b"$MaxedOut" if args.is_empty() => Ok(Message::MaxedOut(None)),
        b"$MaxedOut" => parse_u32(args)
            .map(|n| Message::MaxedOut(Some(n)))
            .ok_or("queue position is not a number"),
        b"$Error" => Ok(Message::Error(decode(args, cs))),
        b"$Failed" => Ok(Message::Failed(decode(args, cs))),
        _ => return Message::Raw(Raw { frame: frame.to_vec(), error: None }),
    };
    parsed.unwrap_or_else(|reason| {
        Message::Raw(Raw {
            frame: frame.to_vec(),
            error: Some(ParseError { command: String::from_utf8_lossy(name).into_owned(), reason }),
        })
    })
}

/// `<a> <b>`, split at the first space; both must be non-empty.
fn parse_pair(args: &[u8], cs: &'static Encoding) -> Option<(String, String)> {
    let (a, b) = text::split_byte(args, b' ')?;
    (!a.is_empty() && !b.is_empty()).then(|| (decode(a, cs), decode(b, cs)))
}

/// Encodes `msg` in its canonical wire form, terminating `|` included.
pub fn encode(msg: &Message, charset: &'static Encoding) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    encode_into(msg, charset, &mut out);
    out
}

/// Appends the canonical wire form of `msg` (with its `|`) to `out`, so that
/// a batch of messages shares one buffer.
pub fn encode_into(msg: &Message, charset: &'static Encoding, out: &mut Vec<u8>) {
    let cs = effective_charset(charset);
    let simple = |out: &mut Vec<u8>, command: &[u8], arg: &str| {
        out.extend_from_slice(command);
        if !arg.is_empty() {
            out.push(b' ');
            push_text(out, arg, cs);
        }
    };
    match msg {
        Message::KeepAlive => {}
        Message::Lock(lock) => lock.write(out, cs),
        Message::Key(key) => {
            out.extend_from_slice(b"$Key ");
            push_bytes(out, key);
        }
        Message::Supports(features) => {
            out.extend_from_slice(b"$Supports");
            for f in features {
                out.push(b' ');
                push_text(out, f, cs);
            }
        }
        Message::ValidateNick(nick) => simple(out, b"$ValidateNick", nick),
        Message::GetPass(salt) => simple(out, b"$GetPass", salt.as_deref().unwrap_or("")),
        Message::MyPass(pass) => simple(out, b"$MyPass", pass),
        Message::BadPass => out.extend_from_slice(b"$BadPass"),
        Message::ValidateDenide(nick) => simple(out, b"$ValidateDenide", nick),
        Message::Hello(nick) => simple(out, b"$Hello", nick),
        Message::Version(v) => simple(out, b"$Version", v),
        Message::GetNickList => out.extend_from_slice(b"$GetNickList"),
        Message::MyInfo(info) => info.write(out, cs),
        Message::NickList(nicks) => user::write_nick_list(out, b"$NickList", nicks, cs),
        Message::OpList(nicks) => user::write_nick_list(out, b"$OpList", nicks, cs),
        Message::BotList(nicks) => user::write_nick_list(out, b"$BotList", nicks, cs),
        Message::Quit(nick) => simple(out, b"$Quit", nick),
        Message::Chat(chat) => chat.write(out, cs),
        Message::PrivateMessage(pm) => pm.write(out, cs),
        Message::Search(search) => search.write(out, cs),
        Message::SearchResult(sr) => sr.write(out, cs),
        Message::ConnectToMe(ctm) => ctm.write(out, cs),
        Message::RevConnectToMe { from, to } => {
            out.extend_from_slice(b"$RevConnectToMe ");
            push_text(out, from, cs);
            out.push(b' ');
            push_text(out, to, cs);
        }
        Message::ForceMove(addr) => simple(out, b"$ForceMove", addr),
        Message::UserIp(entries) => user::write_user_ips(out, entries, cs),
        Message::HubName(name) => escaped(out, b"$HubName", name, cs),
        Message::HubTopic(topic) => escaped(out, b"$HubTopic", topic, cs),
        Message::UserCommand(uc) => uc.write(out, cs),
        Message::ZOn => out.extend_from_slice(b"$ZOn"),
        Message::GetInfo { target, from } => {
            out.extend_from_slice(b"$GetINFO ");
            push_text(out, target, cs);
            out.push(b' ');
            push_text(out, from, cs);
        }
        Message::LogedIn(nick) => simple(out, b"$LogedIn", nick),
        Message::HubIsFull => out.extend_from_slice(b"$HubIsFull"),
        Message::MyNick(nick) => simple(out, b"$MyNick", nick),
        Message::Direction(d) => d.write(out),
        Message::AdcGet(t) => t.write(out, b"$ADCGET"),
        Message::AdcSnd(t) => t.write(out, b"$ADCSND"),
        Message::MaxedOut(None) => out.extend_from_slice(b"$MaxedOut"),
        Message::MaxedOut(Some(n)) => {
            out.extend_from_slice(b"$MaxedOut ");
            text::push_u64(out, u64::from(*n));
        }
        Message::Error(m) => simple(out, b"$Error", m),
        Message::Failed(m) => simple(out, b"$Failed", m),
        Message::Raw(raw) => push_bytes(out, &raw.frame),
    }
    out.push(b'|');
}

/// `<command> <escaped text>`, or the bare command for empty text.
fn escaped(out: &mut Vec<u8>, command: &[u8], text: &str, cs: &'static Encoding) {
    out.extend_from_slice(command);
    if !text.is_empty() {
        out.push(b' ');
        push_escaped(out, text, cs);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use encoding_rs::WINDOWS_1252;

    #[test]
    fn unknown_and_malformed_commands_stay_raw() {
        let m = parse(b"$MCTo: bob $alice hi", WINDOWS_1252);
        let Message::Raw(raw) = &m else { panic!("{m:?}") };
        assert_eq!(raw.command(), b"$MCTo:");
        assert_eq!(raw.error, None);
        assert_eq!(encode(&m, WINDOWS_1252), b"$MCTo: bob $alice hi|");

        let m = parse(b"$Direction Sideways 5", WINDOWS_1252);
        let Message::Raw(raw) = &m else { panic!("{m:?}") };
        let err = raw.error.as_ref().unwrap();
        assert_eq!(err.command, "$Direction");
        assert_eq!(
            err.to_string(),
            "malformed $Direction frame: direction is neither Download nor Upload"
        );
    }

    #[test]
    fn keep_alive() {
        assert_eq!(parse(b"", WINDOWS_1252), Message::KeepAlive);
        assert_eq!(encode(&Message::KeepAlive, WINDOWS_1252), b"|");
    }
}
