//! How far a session follows redirects: the rules both protocols share.
//!
//! A hub may send us elsewhere (`$ForceMove`, `IQUI ... RD`). Hostile or
//! broken hubs do it in storms: a redirect to the hub itself right after
//! the login made 24,180 reconnects in 10 s, and two hubs sending us to each
//! other kept the client busy forever (issue 15, finding 6). So:
//!
//! - a redirect to the address we are on is refused (the session then
//!   reconnects there with its usual backoff);
//! - a redirect back to an address this chain of redirects already left is
//!   a loop: the session ends, naming the chain;
//! - at most [`MAX_CHAIN`] redirects in a row are followed, each later one
//!   after a growing delay; the chain starts again once a session stayed
//!   online long enough to count as stable.
//!
//! Pure bookkeeping: no I/O, no clock (the session arms the delay).

use std::time::Duration;

use crate::address::HubUrl;

/// Redirects followed in a row before the session gives up.
pub const MAX_CHAIN: usize = 4;

/// The delay before the second redirect of a chain; it doubles after.
pub const CHAIN_DELAY: Duration = Duration::from_secs(1);

/// What to do with a redirect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Follow it after this delay (zero for the first of a chain).
    Follow(Duration),
    /// Do not follow; stay (reconnect here with the usual backoff).
    Stay(String),
    /// Do not follow, and end the session.
    End(String),
}

/// The redirects followed since the session was last stable.
#[derive(Debug, Default, Clone)]
pub struct Chain {
    /// Identities (`nmdc://host:port`) of the hubs left by redirects.
    left: Vec<String>,
}

impl Chain {
    /// Decides a redirect from `from` to `to`; when it is to be followed,
    /// `from` joins the chain.
    pub fn check(&mut self, from: &HubUrl, to: &HubUrl) -> Verdict {
        let here = from.identity();
        let there = to.identity();
        if there == here {
            return Verdict::Stay(format!("the redirect names this hub ({there}); not followed"));
        }
        if self.left.contains(&there) {
            let mut path: Vec<&str> = self.left.iter().map(String::as_str).collect();
            path.push(&here);
            path.push(&there);
            return Verdict::End(format!("redirect loop ({}); not followed", path.join(" → ")));
        }
        if self.left.len() >= MAX_CHAIN {
            return Verdict::End(format!(
                "{} redirects in a row (at most {MAX_CHAIN} are followed); not followed",
                self.left.len() + 1
            ));
        }
        let delay = match self.left.len() {
            0 => Duration::ZERO,
            n => CHAIN_DELAY * (1 << (n - 1)),
        };
        self.left.push(here);
        Verdict::Follow(delay)
    }

    /// The session stayed online long enough: a new chain starts.
    pub fn reset(&mut self) {
        self.left.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> HubUrl {
        HubUrl::parse(s).unwrap()
    }

    #[test]
    fn self_redirects_loops_and_long_chains_are_refused() {
        let (a, b, c) = (url("dchub://a:411"), url("b:411"), url("dchub://c"));
        let mut chain = Chain::default();
        assert!(matches!(chain.check(&a, &url("a")), Verdict::Stay(_)), "same hub, other spelling");
        assert_eq!(chain.check(&a, &b), Verdict::Follow(Duration::ZERO));
        assert_eq!(chain.check(&b, &c), Verdict::Follow(CHAIN_DELAY));
        match chain.check(&c, &a) {
            Verdict::End(why) => {
                assert!(
                    why.contains(
                        "redirect loop (nmdc://a:411 → nmdc://b:411 → nmdc://c:411 → nmdc://a:411)"
                    ),
                    "{why}"
                );
            }
            other => panic!("{other:?}"),
        }
        chain.reset();
        let hubs: Vec<HubUrl> =
            (0..=MAX_CHAIN + 1).map(|i| url(&format!("adc://h{i}:1"))).collect();
        for i in 0..MAX_CHAIN {
            assert!(matches!(chain.check(&hubs[i], &hubs[i + 1]), Verdict::Follow(_)), "{i}");
        }
        assert!(
            matches!(chain.check(&hubs[MAX_CHAIN], &hubs[MAX_CHAIN + 1]), Verdict::End(ref w) if w.contains("in a row")),
        );
    }
}
