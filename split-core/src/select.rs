//! Weighted selection over immutable snapshots.
//!
//! One small trait, three selectors, used for traffic-split arms and for nodes inside an
//! upstream:
//! - [`Schedule`] (`roundrobin`, default): `arm_at(ticket)`; every window of
//!   `sum(w)/gcd(w)` consecutive tickets holds exactly `w_i/gcd(w)` picks of arm `i`.
//!   The proxy shares one atomic ticket per rule across threads, the simulator a plain
//!   `u64`: same code, same answer.
//! - [`SeededRandom`] (`random`): ChaCha keyed by (seed, ticket): reproducible, O(1).
//! - [`Rendezvous`] (`chash`): weighted rendezvous hashing on a sticky key; a weight
//!   change moves only the minimum share of keys.
//!
//! Zero weights are never picked unless every weight is zero (then all arms count as
//! weight 1, i.e. plain alternation, as APISIX). A single arm is always picked.

/// Index of an arm (or node) in config order.
pub type ArmIndex = usize;

/// What a selector may use to pick.
#[derive(Debug, Clone, Copy, Default)]
pub struct PickInput<'a> {
    /// Position in the rule's sequence (the proxy's atomic counter, the simulator's loop index).
    pub ticket: u64,
    /// Sticky key bytes for `chash` (header/cookie/arg/consumer value); `None` if absent.
    pub key: Option<&'a [u8]>,
}

/// A weighted selector over a fixed list of arms.
pub trait Select {
    /// Number of arms this selector was built for.
    fn len(&self) -> usize;
    /// Picks an arm. Never panics; returns `None` only when built with zero arms.
    fn pick(&self, input: PickInput<'_>) -> Option<ArmIndex>;
    /// True when built with zero arms.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

mod random;
mod rendezvous;
mod schedule;

pub use random::SeededRandom;
pub use rendezvous::Rendezvous;
pub use schedule::{Schedule, TABLE_MAX_PERIOD};

/// The three selectors behind one type, as compiled from config.
#[derive(Debug, Clone, PartialEq)]
pub enum Selector {
    /// `roundrobin`.
    RoundRobin(Schedule),
    /// `random`.
    Random(SeededRandom),
    /// `chash`; with no key the pick falls back to the round-robin schedule.
    Chash(Rendezvous, Schedule),
}

impl Select for Selector {
    fn len(&self) -> usize {
        match self {
            Selector::RoundRobin(s) => s.len(),
            Selector::Random(r) => Select::len(r),
            Selector::Chash(r, _) => Select::len(r),
        }
    }

    #[inline]
    fn pick(&self, input: PickInput<'_>) -> Option<ArmIndex> {
        match self {
            Selector::RoundRobin(s) => s.arm_at(input.ticket),
            Selector::Random(r) => r.arm_at(input.ticket),
            Selector::Chash(r, s) => match input.key {
                Some(key) => r.arm_for(key),
                None => s.arm_at(input.ticket),
            },
        }
    }
}

/// A stable 64-bit hash of bytes (FNV-1a + splitmix64 finalizer); identical on every
/// platform and release, so sticky keys and rule keys never move between versions.
pub fn stable_hash(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    mix64(h)
}

/// splitmix64 finalizer.
pub fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}
