//! Byte-level mutations of valid inputs, for seeded robustness tests against the live
//! gateway and the Admin API (`split-proxy/tests/hostile_peers.rs`,
//! `split-admin/tests/mutated_writes.rs`). Randomness is the caller's: `below(n)` must
//! return a number in `0..n` (larger ones are reduced modulo `n`), so the same seed
//! gives the same mutations.

/// Bytes a mutation inserts or substitutes: delimiters of the HTTP and JSON grammars and
/// bytes at the edges of the ranges the parsers check.
pub const INTERESTING: &[u8] = b"\r\n \t:;,=\0\x01\x7f\x80\xff09aZ/%?#\"{}[]-\\";

/// Numbers a mutation writes over a run of digits: edges of `u64` and `u32`, signs,
/// leading zeros, hex and spaces.
pub const NUMBERS: &[&[u8]] = &[
    b"0",
    b"-1",
    b"1",
    b"00000000000000000000001",
    b"18446744073709551615",
    b"18446744073709551616",
    b"99999999999999999999999999",
    b"0x10",
    b"1 2",
    b"4294967296",
    b"1e400",
    b"0.5",
];

/// Kinds of mutation [`mutate`] applies (see its list).
pub const KINDS: usize = 9;

/// One to four mutations of `seed`, each one of:
/// 0. flip one bit;
/// 1. replace a byte with one of [`INTERESTING`];
/// 2. insert one to eight of [`INTERESTING`];
/// 3. delete up to 16 bytes;
/// 4. copy up to 32 bytes elsewhere;
/// 5. cut the input short;
/// 6. replace the tail with the tail of one of `others` (none: cut short);
/// 7. write one of [`NUMBERS`] over the next run of digits;
/// 8. insert an `X-Long` field line of 100, 9,000 or 70,000 bytes after the first line.
///
/// Kinds that cannot apply (a flip in an empty input, no digits, no line end) leave the
/// input as it is.
pub fn mutate(seed: &[u8], others: &[&[u8]], below: &mut impl FnMut(usize) -> usize) -> Vec<u8> {
    let mut pick = |n: usize| below(n.max(1)) % n.max(1);
    let mut out = seed.to_vec();
    for _ in 0..1 + pick(4) {
        let kind = pick(KINDS);
        apply(kind, &mut out, others, &mut pick);
    }
    out
}

/// Applies mutation `kind` (see [`mutate`]) to `out`.
fn apply(kind: usize, out: &mut Vec<u8>, others: &[&[u8]], pick: &mut impl FnMut(usize) -> usize) {
    let at = pick(out.len() + 1);
    match kind {
        0 if !out.is_empty() => {
            let i = pick(out.len());
            out[i] ^= 1 << pick(8);
        }
        1 if !out.is_empty() => {
            let i = pick(out.len());
            out[i] = INTERESTING[pick(INTERESTING.len())];
        }
        2 => {
            let n = 1 + pick(8);
            let bytes: Vec<u8> = (0..n)
                .map(|_| INTERESTING[pick(INTERESTING.len())])
                .collect();
            out.splice(at..at, bytes);
        }
        3 => {
            let end = (at + 1 + pick(16)).min(out.len());
            out.drain(at.min(end)..end);
        }
        4 => {
            let end = (at + 1 + pick(32)).min(out.len());
            let copy = out[at.min(end)..end].to_vec();
            let to = pick(out.len() + 1);
            out.splice(to..to, copy);
        }
        5 => out.truncate(at),
        6 => {
            out.truncate(at);
            if !others.is_empty() {
                let other = others[pick(others.len())];
                let from = pick(other.len() + 1);
                out.extend_from_slice(&other[from..]);
            }
        }
        7 => {
            if let Some(start) = out[at..].iter().position(u8::is_ascii_digit) {
                let start = at + start;
                let len = out[start..]
                    .iter()
                    .take_while(|b| b.is_ascii_digit())
                    .count();
                let number = NUMBERS[pick(NUMBERS.len())];
                out.splice(start..start + len, number.iter().copied());
            }
        }
        8 => {
            if let Some(eol) = out.windows(2).position(|w| w == b"\r\n") {
                let len = [100, 9_000, 70_000][pick(3)];
                let mut field = b"X-Long: ".to_vec();
                field.resize(8 + len, b'a');
                field.extend_from_slice(b"\r\n");
                out.splice(eol + 2..eol + 2, field);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small deterministic generator (64-bit LCG, high bits) for the tests.
    fn lcg(state: u64) -> impl FnMut(usize) -> usize {
        let mut s = state;
        move |n| {
            s = s
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            ((s >> 33) as usize) % n
        }
    }

    const SEED: &[u8] =
        b"POST /chat/completions HTTP/1.1\r\nContent-Length: 12\r\n\r\n{\"a\":123456}";
    const OTHER: &[u8] = b"GET /other HTTP/1.1\r\n\r\n";

    #[test]
    fn the_same_generator_gives_the_same_mutations() {
        for state in 0..50 {
            let a = mutate(SEED, &[OTHER], &mut lcg(state));
            let b = mutate(SEED, &[OTHER], &mut lcg(state));
            assert_eq!(a, b, "state {state}");
        }
    }

    #[test]
    fn most_cases_change_the_input_and_lengths_vary() {
        let outs: Vec<Vec<u8>> = (0..400)
            .map(|s| mutate(SEED, &[OTHER], &mut lcg(s)))
            .collect();
        let changed = outs.iter().filter(|o| o.as_slice() != SEED).count();
        assert!(changed > 360, "only {changed} of 400 changed");
        assert!(outs.iter().any(|o| o.len() < SEED.len()));
        assert!(outs.iter().any(|o| o.len() > 70_000), "no long field");
        assert!(outs
            .iter()
            .any(|o| o.ends_with(b"/other HTTP/1.1\r\n\r\n") || o.ends_with(b"\r\n\r\n")));
    }

    #[test]
    fn each_kind_does_what_it_says() {
        let fixed = |values: &'static [usize]| {
            let mut i = 0;
            move |n: usize| {
                let v = values[i % values.len()] % n;
                i += 1;
                v
            }
        };
        // kind 5 at position 4: cut to "POST".
        let mut out = SEED.to_vec();
        apply(5, &mut out, &[], &mut fixed(&[4]));
        assert_eq!(out, b"POST");
        // kind 7 from position 0: the Content-Length digits become "-1".
        let mut out = SEED.to_vec();
        apply(7, &mut out, &[], &mut fixed(&[0, 1]));
        assert!(
            out.starts_with(b"POST /chat/completions HTTP/-1.1"),
            "{}",
            String::from_utf8_lossy(&out)
        );
        // kind 6 at 0 with the other input from its start: the other input whole.
        let mut out = SEED.to_vec();
        apply(6, &mut out, &[OTHER], &mut fixed(&[0, 0, 0]));
        assert_eq!(out, OTHER);
        // kind 8: a 100-byte field after the request line.
        let mut out = SEED.to_vec();
        apply(8, &mut out, &[], &mut fixed(&[0, 0]));
        let field = format!("X-Long: {}\r\n", "a".repeat(100));
        assert!(out.starts_with(
            format!("POST /chat/completions HTTP/1.1\r\n{field}Content-Length").as_bytes()
        ));
        // kind 3 at 0: up to 16 bytes go.
        let mut out = SEED.to_vec();
        apply(3, &mut out, &[], &mut fixed(&[0, 4]));
        assert_eq!(out, &SEED[5..]);
    }
}
