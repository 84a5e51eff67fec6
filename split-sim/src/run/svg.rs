//! `--svg`: the cumulative share of each arm of the target rule over the requests, one
//! `<path>` per arm, a dashed vertical line at each weight change.

use std::fmt::Write as _;

use super::engine::decode;

const WIDTH: f64 = 900.0;
const HEIGHT: f64 = 420.0;
const LEFT: f64 = 60.0;
const RIGHT: f64 = 170.0;
const TOP: f64 = 30.0;
const BOTTOM: f64 = 50.0;
const COLORS: [&str; 8] = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf",
];
/// Points per path at most.
const MAX_POINTS: u64 = 1000;

/// Escapes text for XML content and attributes.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if (c as u32) < 0x20 && c != '\t' && c != '\n' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// Renders the plot for outcome group `group` with arm `labels`; `changes` are request
/// indexes of weight changes; `title` goes on top.
pub fn render(
    outcomes: &[u32],
    group: u32,
    labels: &[String],
    changes: &[u64],
    title: &str,
) -> String {
    let n = outcomes.len() as u64;
    let k = labels.len().max(1);
    let stride = (n / MAX_POINTS).max(1);
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let x_of = |i: u64| LEFT + plot_w * (i as f64 / n.max(1) as f64);
    let y_of = |share: f64| TOP + plot_h * (1.0 - share);

    let mut counts = vec![0u64; k];
    let mut total = 0u64;
    let mut paths: Vec<String> = vec![String::new(); k];
    for (i, &c) in outcomes.iter().enumerate() {
        let (g, a) = decode(c);
        if g == group {
            if let Some(slot) = counts.get_mut(a) {
                *slot += 1;
                total += 1;
            }
        }
        let i = i as u64 + 1;
        if total > 0 && (i.is_multiple_of(stride) || i == n) {
            for (arm, d) in paths.iter_mut().enumerate() {
                let share = counts[arm] as f64 / total as f64;
                let cmd = if d.is_empty() { 'M' } else { 'L' };
                // Writing to a String cannot fail.
                let _ = write!(d, "{cmd}{:.2} {:.2} ", x_of(i), y_of(share));
            }
        }
    }

    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(
        s,
        r#"<rect x="0" y="0" width="{WIDTH}" height="{HEIGHT}" fill="white"/>"#
    );
    let _ = writeln!(
        s,
        r#"<text x="{LEFT}" y="18" font-size="14">{}</text>"#,
        escape(title)
    );
    // Axes and grid.
    for step in 0..=4 {
        let share = f64::from(step) / 4.0;
        let y = y_of(share);
        let _ = writeln!(
            s,
            r##"<line x1="{LEFT}" y1="{y:.2}" x2="{:.2}" y2="{y:.2}" stroke="#ddd"/>"##,
            LEFT + plot_w
        );
        let _ = writeln!(
            s,
            r#"<text x="{:.2}" y="{:.2}" text-anchor="end">{}%</text>"#,
            LEFT - 6.0,
            y + 4.0,
            step * 25
        );
    }
    for step in 0..=4u64 {
        let i = n * step / 4;
        let _ = writeln!(
            s,
            r#"<text x="{:.2}" y="{:.2}" text-anchor="middle">{i}</text>"#,
            x_of(i),
            TOP + plot_h + 18.0
        );
    }
    let _ = writeln!(
        s,
        r#"<text x="{:.2}" y="{:.2}" text-anchor="middle">requests</text>"#,
        LEFT + plot_w / 2.0,
        HEIGHT - 8.0
    );
    let _ = writeln!(
        s,
        r##"<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#444"/>"##
    );
    for &at in changes {
        let x = x_of(at);
        let _ = writeln!(
            s,
            r##"<line class="change" x1="{x:.2}" y1="{TOP}" x2="{x:.2}" y2="{:.2}" stroke="#555" stroke-dasharray="4 3"/>"##,
            TOP + plot_h
        );
    }
    for (arm, d) in paths.iter().enumerate() {
        let color = COLORS[arm % COLORS.len()];
        let label = labels.get(arm).map(String::as_str).unwrap_or("?");
        let _ = writeln!(
            s,
            r#"<path class="arm" data-arm="{}" d="{}" fill="none" stroke="{color}" stroke-width="1.5"/>"#,
            escape(label),
            d.trim_end()
        );
        let ly = TOP + 14.0 + 18.0 * arm as f64;
        let lx = LEFT + plot_w + 12.0;
        let _ = writeln!(
            s,
            r#"<line x1="{lx:.2}" y1="{ly:.2}" x2="{:.2}" y2="{ly:.2}" stroke="{color}" stroke-width="3"/>"#,
            lx + 18.0
        );
        let _ = writeln!(
            s,
            r#"<text x="{:.2}" y="{:.2}">arm {}</text>"#,
            lx + 24.0,
            ly + 4.0,
            escape(label)
        );
    }
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::engine::code;

    #[test]
    fn escapes_markup() {
        assert_eq!(escape(r#"<a&"b'>"#), "&lt;a&amp;&quot;b&apos;&gt;");
    }

    #[test]
    fn one_path_per_arm_and_a_line_per_change() {
        let outcomes: Vec<u32> = (0..100).map(|i| code(3, (i % 3 == 0) as usize)).collect();
        let svg = render(&outcomes, 3, &["a".into(), "b<".into()], &[50], "t & t");
        assert_eq!(svg.matches("<path ").count(), 2);
        assert_eq!(svg.matches(r#"class="change""#).count(), 1);
        assert!(svg.contains("b&lt;"));
        assert!(svg.contains("t &amp; t"));
    }
}
