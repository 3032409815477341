//! Downloads (and, with the peer sessions, uploads): the parts that do not
//! depend on a connection.
//!
//! | module | owns |
//! |---|---|
//! | [`place`] | names from outside made safe, temporary files, the final move that never overwrites |
//! | [`ranges`] | byte-range sets: what of a file is verified, fetched, left |
//! | [`queue`] | the persistent download queue (SQLite): items, sources, verified ranges |
//! | [`verify`] | checking blocks against the TTH leaves as they stream in |
//! | [`segments`] | which bytes each source fetches next; segments that grow and shrink with speed |
//! | [`slots`] | upload slots, mini slots for small requests, granted slots |
//! | [`limit`] | the token bucket of the global bandwidth limit |
//!
//! Nothing here opens a socket or reads a clock: the peer sessions and the
//! downloader job drive these with the pool's time.

pub mod limit;
pub mod place;
pub mod queue;
pub mod ranges;
pub mod segments;
pub mod slots;
pub mod verify;
