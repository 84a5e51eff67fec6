//! The rewrites of one decision, held inline: a route has at most one `proxy-rewrite`
//! and an arm at most one `rewrite`, so two slots always suffice and deciding never
//! allocates.

use std::ops::Deref;

use crate::rewrite::Rewrite;

/// Rewrites to apply in order (route `proxy-rewrite`, then the arm's), at most two.
/// Dereferences to `[&Rewrite]`, so it reads like the slice it stands for.
#[derive(Debug, Clone, Copy, Default)]
pub struct Rewrites<'a>(Slots<'a>);

#[derive(Debug, Clone, Copy, Default)]
enum Slots<'a> {
    #[default]
    None,
    One([&'a Rewrite; 1]),
    Two([&'a Rewrite; 2]),
}

impl<'a> Rewrites<'a> {
    /// `first` then `second`, skipping absent ones.
    pub fn new(first: Option<&'a Rewrite>, second: Option<&'a Rewrite>) -> Rewrites<'a> {
        Rewrites(match (first, second) {
            (Some(a), Some(b)) => Slots::Two([a, b]),
            (Some(a), None) | (None, Some(a)) => Slots::One([a]),
            (None, None) => Slots::None,
        })
    }

    /// The rewrites as a slice, in application order.
    pub fn as_slice(&self) -> &[&'a Rewrite] {
        match &self.0 {
            Slots::None => &[],
            Slots::One(a) => a,
            Slots::Two(a) => a,
        }
    }
}

impl<'a> Deref for Rewrites<'a> {
    type Target = [&'a Rewrite];

    fn deref(&self) -> &[&'a Rewrite] {
        self.as_slice()
    }
}

impl<'r, 'a> IntoIterator for &'r Rewrites<'a> {
    type Item = &'r &'a Rewrite;
    type IntoIter = std::slice::Iter<'r, &'a Rewrite>;

    fn into_iter(self) -> Self::IntoIter {
        self.as_slice().iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rewrite::HeaderEdits;

    fn rewrite(uri: &str) -> Rewrite {
        Rewrite {
            uri: Some(uri.into()),
            regex_uri: None,
            host: None,
            headers: HeaderEdits::default(),
            body: None,
        }
    }

    fn uris(r: &Rewrites<'_>) -> Vec<String> {
        r.iter()
            .filter_map(|w| w.uri.as_deref().map(str::to_owned))
            .collect()
    }

    #[test]
    fn keeps_order_and_skips_absent() {
        let (a, b) = (rewrite("/a"), rewrite("/b"));
        assert!(Rewrites::new(None, None).is_empty());
        assert_eq!(uris(&Rewrites::new(Some(&a), None)), ["/a"]);
        assert_eq!(uris(&Rewrites::new(None, Some(&b))), ["/b"]);
        assert_eq!(uris(&Rewrites::new(Some(&a), Some(&b))), ["/a", "/b"]);
        let both = Rewrites::new(Some(&a), Some(&b));
        let mut seen = Vec::new();
        for w in &both {
            seen.extend(w.uri.as_deref().map(str::to_owned));
        }
        assert_eq!(seen, ["/a", "/b"]);
        assert_eq!(both[1].uri.as_deref(), Some("/b"));
    }
}
