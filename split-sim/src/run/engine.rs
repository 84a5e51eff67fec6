//! Drives requests through `Snapshot::find` + `CompiledRoute::decide` — the proxy's code
//! path — with a plain `u64` ticket per [`RuleKey`], and records where each request went.
//!
//! Threads: a segment is cut into contiguous chunks. A first pass counts how many tickets
//! each chunk takes per rule (whether a request takes a ticket never depends on the
//! ticket's value); a second pass gives every chunk its exact starting tickets. So the
//! outcome of every request is the one a sequential run gives, for any thread count.

use std::collections::HashMap;
use std::ops::Range;

use indicatif::ProgressBar;
use split_core::snapshot::{Lookup, RuleKey, Snapshot};

use super::traffic::Traffic;

/// Bits of an outcome code that hold the arm (arms ≤ 20 < 32).
pub const ARM_BITS: u32 = 5;
/// Decisions between progress bar updates.
const PROGRESS_BATCH: u64 = 1 << 16;

/// Outcome group of requests that matched no route.
pub const GROUP_NOT_FOUND: u32 = 0;
/// Outcome group of requests the core could not decide (a var error).
pub const GROUP_ERROR: u32 = 1;

/// One outcome group: a (route, rule) pair, or a route's no-rule-matched path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    /// Route id.
    pub route: String,
    /// Rule index; `None` = no rule matched (the route's own upstream).
    pub rule: Option<usize>,
    /// Arm labels.
    pub labels: Vec<String>,
}

/// All outcome groups of a configuration and the code of each.
#[derive(Debug, Clone)]
pub struct Groups {
    /// Index = group number; 0 and 1 are the 404 and error placeholders.
    pub list: Vec<Group>,
    by_route: HashMap<String, u32>,
}

impl Groups {
    /// Enumerates the groups of `snapshot`.
    pub fn new(snapshot: &Snapshot) -> Groups {
        let mut list = vec![
            Group {
                route: String::new(),
                rule: None,
                labels: Vec::new(),
            };
            2
        ];
        let mut by_route = HashMap::new();
        for r in &snapshot.routes {
            by_route.insert(r.route.id.clone(), list.len() as u32);
            list.push(Group {
                route: r.route.id.clone(),
                rule: None,
                labels: Vec::new(),
            });
            for (i, rule) in r.rules.iter().enumerate() {
                list.push(Group {
                    route: r.route.id.clone(),
                    rule: Some(i),
                    labels: rule.arms.iter().map(|a| a.label.to_string()).collect(),
                });
            }
        }
        Groups { list, by_route }
    }

    /// The group number of (route, rule).
    pub fn find(&self, route: &str, rule: Option<usize>) -> Option<u32> {
        let base = *self.by_route.get(route)?;
        Some(match rule {
            None => base,
            Some(r) => base + 1 + r as u32,
        })
    }
}

/// Encodes (group, arm).
pub fn code(group: u32, arm: usize) -> u32 {
    (group << ARM_BITS) | (arm as u32 & ((1 << ARM_BITS) - 1))
}

/// Decodes a code into (group, arm).
pub fn decode(code: u32) -> (u32, usize) {
    (code >> ARM_BITS, (code & ((1 << ARM_BITS) - 1)) as usize)
}

/// Next ticket per rule; a handful of rules, so a vector beats a map.
#[derive(Debug, Clone, Default)]
pub struct TicketBook {
    entries: Vec<(RuleKey, u64)>,
}

impl TicketBook {
    /// Takes the next ticket of `key`.
    pub fn take(&mut self, key: RuleKey) -> u64 {
        match self.entries.iter_mut().find(|(k, _)| *k == key) {
            Some((_, next)) => {
                let t = *next;
                *next += 1;
                t
            }
            None => {
                self.entries.push((key, 1));
                0
            }
        }
    }

    /// The next ticket of `key` without taking it.
    pub fn peek(&self, key: RuleKey) -> u64 {
        self.entries
            .iter()
            .find(|(k, _)| *k == key)
            .map_or(0, |(_, n)| *n)
    }

    /// Adds `other`'s counts to this book's.
    pub fn add(&mut self, other: &TicketBook) {
        for (k, n) in &other.entries {
            match self.entries.iter_mut().find(|(x, _)| x == k) {
                Some((_, mine)) => *mine += n,
                None => self.entries.push((*k, *n)),
            }
        }
    }
}

/// What one segment runs on.
#[derive(Debug, Clone, Copy)]
pub struct Sim<'a> {
    /// The configuration.
    pub snapshot: &'a Snapshot,
    /// The traffic.
    pub traffic: &'a Traffic,
    /// Outcome groups.
    pub groups: &'a Groups,
}

/// Decides request `i` and returns its outcome code.
pub fn decide_one(sim: &Sim<'_>, i: u64, book: &mut TicketBook) -> u32 {
    let groups = sim.groups;
    sim.traffic
        .with_request(i, |req| match sim.snapshot.find(req) {
            Lookup::Found(route) => {
                let mut ticket = |k: RuleKey| book.take(k);
                match route.decide(req, &mut ticket) {
                    Ok(d) => match groups.find(&route.route.id, d.rule) {
                        Some(g) => code(g, d.arm.unwrap_or(0)),
                        None => code(GROUP_ERROR, 0),
                    },
                    Err(_) => code(GROUP_ERROR, 0),
                }
            }
            // The traffic always carries a body, so the core never needs to ask for one.
            Lookup::NeedBody => code(GROUP_ERROR, 0),
            Lookup::NotFound => code(GROUP_NOT_FOUND, 0),
        })
}

/// Threads actually used for a segment of `len` requests: below ~64k requests per
/// thread the counting pass costs more than the threads save.
pub fn effective_threads(len: u64, threads: usize) -> usize {
    threads.clamp(1, (len / 65_536).max(1) as usize)
}

/// Decisions a segment makes (the counting pass doubles them when threaded), for the
/// progress bar.
pub fn work(len: u64, threads: usize) -> u64 {
    if effective_threads(len, threads) > 1 {
        2 * len
    } else {
        len
    }
}

/// Runs requests `range` (one configuration segment) into `out` (same length), starting
/// from and advancing `book`.
pub fn run_segment(
    sim: &Sim<'_>,
    range: Range<u64>,
    out: &mut [u32],
    book: &mut TicketBook,
    threads: usize,
    progress: &ProgressBar,
) {
    let len = range.end - range.start;
    let threads = effective_threads(len, threads);
    if threads == 1 {
        run_chunk(sim, range, out, book, progress);
        return;
    }
    let bounds: Vec<Range<u64>> = (0..threads as u64)
        .map(|t| {
            range.start + t * len / threads as u64..range.start + (t + 1) * len / threads as u64
        })
        .collect();
    // Pass 1: tickets each chunk takes.
    let counts: Vec<TicketBook> = std::thread::scope(|s| {
        let handles: Vec<_> = bounds
            .iter()
            .map(|b| {
                let b = b.clone();
                s.spawn(move || {
                    let mut counting = TicketBook::default();
                    let mut pending = 0;
                    for i in b {
                        decide_one(sim, i, &mut counting);
                        pending += 1;
                        if pending == PROGRESS_BATCH {
                            progress.inc(PROGRESS_BATCH);
                            pending = 0;
                        }
                    }
                    progress.inc(pending);
                    counting
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_default())
            .collect()
    });
    // Starting tickets of each chunk.
    let mut starts = Vec::with_capacity(threads);
    let mut running = book.clone();
    for c in &counts {
        starts.push(running.clone());
        running.add(c);
    }
    // Pass 2: the real outcomes.
    std::thread::scope(|s| {
        let mut rest = out;
        for (b, start) in bounds.iter().zip(starts) {
            let (mine, tail) = rest.split_at_mut((b.end - b.start) as usize);
            rest = tail;
            let b = b.clone();
            s.spawn(move || {
                let mut book = start;
                run_chunk(sim, b, mine, &mut book, progress);
            });
        }
    });
    *book = running;
}

fn run_chunk(
    sim: &Sim<'_>,
    range: Range<u64>,
    out: &mut [u32],
    book: &mut TicketBook,
    progress: &ProgressBar,
) {
    let mut pending = 0;
    for (slot, i) in out.iter_mut().zip(range) {
        *slot = decide_one(sim, i, book);
        pending += 1;
        if pending == PROGRESS_BATCH {
            progress.inc(PROGRESS_BATCH);
            pending = 0;
        }
    }
    progress.inc(pending);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip() {
        for (g, a) in [(0, 0), (2, 19), (1000, 7)] {
            assert_eq!(decode(code(g, a)), (g, a));
        }
    }

    #[test]
    fn ticket_book_counts_per_rule() {
        let mut b = TicketBook::default();
        assert_eq!(b.take(RuleKey(1)), 0);
        assert_eq!(b.take(RuleKey(1)), 1);
        assert_eq!(b.take(RuleKey(2)), 0);
        assert_eq!(b.peek(RuleKey(1)), 2);
        let mut c = TicketBook::default();
        c.take(RuleKey(2));
        c.add(&b);
        assert_eq!(c.peek(RuleKey(2)), 2);
        assert_eq!(c.peek(RuleKey(1)), 2);
    }
}
