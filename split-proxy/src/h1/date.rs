//! The `Date` header value, formatted once per second per thread.

use std::cell::RefCell;
use std::time::{SystemTime, UNIX_EPOCH};

use http::HeaderValue;

thread_local! {
    static CACHED: RefCell<(u64, Option<HeaderValue>)> = const { RefCell::new((0, None)) };
}

/// The current time as an IMF-fixdate `Date` value.
pub fn now() -> HeaderValue {
    let now = SystemTime::now();
    let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    CACHED.with(|cell| {
        let mut cached = cell.borrow_mut();
        if cached.0 != secs || cached.1.is_none() {
            let text = httpdate::fmt_http_date(now);
            // An IMF-fixdate is plain ASCII; fall back to a fixed value rather than panic.
            let value = HeaderValue::from_str(&text)
                .unwrap_or(HeaderValue::from_static("Thu, 01 Jan 1970 00:00:00 GMT"));
            *cached = (secs, Some(value));
        }
        cached
            .1
            .clone()
            .unwrap_or(HeaderValue::from_static("Thu, 01 Jan 1970 00:00:00 GMT"))
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_date_is_an_imf_fixdate_of_now() {
        let value = super::now();
        let text = value.to_str().unwrap();
        let parsed = httpdate::parse_http_date(text).unwrap();
        let age = std::time::SystemTime::now()
            .duration_since(parsed)
            .unwrap_or_default();
        assert!(age.as_secs() <= 2, "{text}");
        assert!(text.ends_with(" GMT"), "{text}");
    }
}
