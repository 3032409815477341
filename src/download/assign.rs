//! What a download connection fetches next: a file list asked of that
//! user, else the TTH leaves of a queued item, else its next segment.
//!
//! It builds the [`Fetch`]es of `fetch.rs` for the service; it keeps no
//! state of its own.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

use crate::peer::{Fetch, PeerUser};
use crate::proto::tth::TigerTree;
use crate::transfer::queue::Priority;
use crate::transfer::ranges::RangeSet;
use crate::transfer::segments::SourceId;
use crate::transfer::slots::ConnKey;
use crate::transfer::verify::BlockAssembler;

use super::fetch::{LeavesFetch, ListFetch, SegmentFetch};
use super::flow::Flow;
use super::model::{key_of, DownloadEvent, ItemId, ROOT_ONLY};
use super::service::{open_tmp, Downloads};

impl Downloads {
    pub(super) fn next(
        &self,
        conn: ConnKey,
        user: &PeerUser,
        tls: bool,
        now: Instant,
    ) -> Option<Box<dyn Fetch>> {
        let key = key_of(user);
        log::debug!(target: "download", "connection {conn} with {} ({}) asks for work", user.nick, key.1);
        {
            let mut conns = self.inner.conns.borrow_mut();
            if let std::collections::hash_map::Entry::Vacant(e) = conns.entry(conn) {
                e.insert(key.clone());
                let mut users = self.inner.users.borrow_mut();
                let u = users.entry(key.clone()).or_default();
                u.conns += 1;
                u.asked = None;
                u.failures = 0;
                u.retry_at = None;
            }
        }
        // A file list first.
        {
            let mut lists = self.inner.lists.borrow_mut();
            if let Some(l) = lists.iter_mut().find(|l| l.user == key && !l.running) {
                l.running = true;
                return Some(Box::new(ListFetch {
                    dl: self.clone(),
                    id: l.id,
                    dir: l.dir.clone(),
                    buf: Vec::new(),
                    expected: 0,
                }));
            }
        }
        let source = conn as SourceId;
        let mut runs = self.inner.runs.borrow_mut();
        let mut order: Vec<ItemId> = runs
            .values()
            .filter(|r| {
                r.item.priority != Priority::Paused
                    && !r.dropped.contains(&key)
                    && r.item.sources.iter().any(|s| s.hub == key.0 && s.user == key.1)
            })
            .map(|r| r.item.id)
            .collect();
        order.sort_by_key(|id| {
            let r = &runs[id];
            (std::cmp::Reverse(r.item.priority as i64), r.item.added, id.0)
        });
        for id in order {
            let run = runs.get_mut(&id)?;
            if run.tree.is_none() {
                if run.item.size <= ROOT_ONLY {
                    let root = run.item.tth;
                    match TigerTree::from_tthl(run.item.size, root, root.as_bytes()) {
                        Ok(t) => run.set_tree(t, self.inner.opts.borrow().min_segment),
                        Err(e) => {
                            log::error!(target: "download", "{}: {e}", run.item.name.display());
                            continue;
                        }
                    }
                } else {
                    run.leaves_running += 1;
                    let info = run.info();
                    let f = LeavesFetch {
                        dl: self.clone(),
                        item: id,
                        tth: run.item.tth,
                        size: run.item.size,
                        user: key.clone(),
                        buf: Vec::new(),
                        expected: 0,
                    };
                    drop(runs);
                    self.emit(&DownloadEvent::Started { item: info, nick: user.nick.clone(), tls });
                    return Some(Box::new(f));
                }
            }
            let speed = run.speed.get(&key).copied().unwrap_or(0);
            let Some(tree) = run.tree.clone() else { continue };
            let Some(segs) = run.segments.as_mut() else { continue };
            let Some(range) = segs.assign(source, speed) else {
                log::debug!(target: "download", "{}: nothing for {} (verified {}, {} running)", run.item.name.display(), user.nick, segs.verified().len(), segs.running());
                continue;
            };
            let file = match &run.file {
                Some(f) => f.clone(),
                None => match open_tmp(&run.tmp, &run.item.dir) {
                    Ok(f) => run.file.insert(Arc::new(f)).clone(),
                    Err(e) => {
                        segs.finish(source);
                        let why = format!("opening {}: {e}", run.tmp.display());
                        log::error!(target: "download", "{why}");
                        run.item.error = Some(why);
                        continue;
                    }
                },
            };
            log::debug!(target: "download", "{}: bytes {}..{} from {} (connection {conn})", run.item.name.display(), range.start, range.end, user.nick);
            run.running.insert(source, key.clone());
            let first = run.running.len() == 1 && run.fetched == 0;
            let info = run.info();
            let flow = Flow {
                item: id,
                source,
                user: key.clone(),
                assembler: BlockAssembler::new(&tree),
                in_flight: 0,
                pending: RangeSet::new(),
                stop: None,
                reported: false,
                over: false,
            };
            let f = SegmentFetch {
                dl: self.clone(),
                flow: Rc::new(RefCell::new(flow)),
                tth: run.item.tth,
                pos: range.start,
                batch_start: range.start,
                batch: self.spare_buffer(),
                range,
                tree,
                file,
                started: now,
            };
            drop(runs);
            if first {
                log::info!(target: "download", "downloading {} from {}", info.target.display(), user.nick);
            }
            self.emit(&DownloadEvent::Started { item: info, nick: user.nick.clone(), tls });
            return Some(Box::new(f));
        }
        None
    }
}
