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

/// Deterministic weighted round robin: an immutable schedule indexed by ticket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    _private: (),
}

impl Schedule {
    /// Builds the schedule for `weights` in config order. O(arms) memory (a small lookup
    /// table is allowed only for small periods; never memory proportional to weights).
    pub fn new(weights: &[u32]) -> Schedule {
        let _ = weights;
        todo!("select::Schedule::new")
    }
    /// The arm for `ticket`.
    pub fn arm_at(&self, ticket: u64) -> Option<ArmIndex> {
        let _ = ticket;
        todo!("select::Schedule::arm_at")
    }
    /// `sum(w)/gcd(w)` over the effective weights: the window with exact counts.
    pub fn period(&self) -> u64 {
        todo!("select::Schedule::period")
    }
}

/// Reproducible weighted random selection: ChaCha keyed by (`seed`, `ticket`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeededRandom {
    _private: (),
}

impl SeededRandom {
    /// Builds a selector for `weights` with `seed`.
    pub fn new(weights: &[u32], seed: u64) -> SeededRandom {
        let _ = (weights, seed);
        todo!("select::SeededRandom::new")
    }
}

/// Weighted rendezvous (highest random weight) hashing on a sticky key.
#[derive(Debug, Clone, PartialEq)]
pub struct Rendezvous {
    _private: (),
}

impl Rendezvous {
    /// Builds a selector; `arm_ids` are stable identities of the arms (so reordering or
    /// editing other arms does not move keys), `weights` their weights.
    pub fn new(arm_ids: &[u64], weights: &[u32]) -> Rendezvous {
        let _ = (arm_ids, weights);
        todo!("select::Rendezvous::new")
    }
}

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
