//! Webhook delivery of afterScript notifications: only to URLs under an operator's
//! `--hook-allow` prefix, signed with the org's secret (`X-Exportd-Signature:
//! sha256=<hex hmac>`), with a timeout and up to 3 retries with backoff. Every outcome is an
//! event.

use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use std::time::Duration;

pub const RETRIES: u32 = 3;
pub const TIMEOUT: Duration = Duration::from_secs(5);
pub const BACKOFF: Duration = Duration::from_millis(250);

pub fn signature(secret: &str, body: &[u8]) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any size");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Whether `url` is under one of the allowed prefixes: same scheme and authority, and the
/// prefix ends at a path boundary (so `http://a:80` does not allow `http://a:8000`).
pub fn allowed(url: &str, prefixes: &[String]) -> bool {
    let Some((scheme, rest)) = url.split_once("://") else {
        return false;
    };
    if !(scheme == "http" || scheme == "https") {
        return false;
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.contains('@') || url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return false;
    }
    prefixes.iter().any(|p| {
        url.strip_prefix(p.as_str()).is_some_and(|tail| {
            p.ends_with('/') || tail.is_empty() || tail.starts_with(['/', '?', '#'])
        })
    })
}

/// Delivers each notification; `event(name, data)` records every outcome.
pub fn deliver_all(
    notes: &[(String, Value)],
    allow: &[String],
    secret: &str,
    event: &mut dyn FnMut(&str, Value),
) {
    let agent = ureq::AgentBuilder::new()
        .timeout(TIMEOUT)
        .redirects(0)
        .build();
    for (url, payload) in notes {
        if !allowed(url, allow) {
            event(
                "notify.refused",
                json!({"url": url, "error": "the URL is not on the server's --hook-allow list; nothing was sent"}),
            );
            continue;
        }
        let body = payload.to_string();
        let sig = signature(secret, body.as_bytes());
        let mut last_err = String::new();
        let mut delivered = false;
        for attempt in 1..=RETRIES + 1 {
            let res = agent
                .post(url)
                .set("Content-Type", "application/json")
                .set("X-Exportd-Signature", &sig)
                .send_string(&body);
            match res {
                Ok(r) => {
                    event(
                        "notify.delivered",
                        json!({"url": url, "status": r.status(), "attempts": attempt}),
                    );
                    delivered = true;
                    break;
                }
                Err(ureq::Error::Status(code, _)) => last_err = format!("HTTP {code}"),
                Err(e) => last_err = e.to_string(),
            }
            if attempt <= RETRIES {
                std::thread::sleep(BACKOFF * 2u32.pow(attempt - 1));
            }
        }
        if !delivered {
            event(
                "notify.failed",
                json!({"url": url, "error": last_err, "attempts": RETRIES + 1}),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allow_list_matches_at_path_boundaries_only() {
        let allow = vec![
            "http://127.0.0.1:9000".to_string(),
            "https://hooks.example.com/acme/".to_string(),
        ];
        assert!(allowed("http://127.0.0.1:9000", &allow));
        assert!(allowed("http://127.0.0.1:9000/x?y=1", &allow));
        assert!(!allowed("http://127.0.0.1:90001/x", &allow));
        assert!(!allowed("http://127.0.0.1:9000@evil.com/x", &allow));
        assert!(allowed("https://hooks.example.com/acme/done", &allow));
        assert!(!allowed("https://hooks.example.com/other", &allow));
        assert!(!allowed("file:///etc/passwd", &allow));
        assert!(!allowed("http://127.0.0.1:9000/ x", &allow));
    }

    #[test]
    fn signature_is_hmac_sha256_hex() {
        // RFC 4231 test case 2
        let s = signature("Jefe", b"what do ya want for nothing?");
        assert_eq!(
            s,
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
