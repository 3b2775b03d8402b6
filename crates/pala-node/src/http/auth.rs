//! Who may write.
//!
//! **Forwarding.** A node passes the transactions submitted to it on to the proposers
//! (`http.forward_to`). The receiving proposer must know a batch was forwarded (so it does
//! not forward it again and does not time its finality as a fresh submission), but that
//! knowledge must not come from anything a client can set: a plain `X-Pala-Forwarded`
//! header let any client make a voter answer 200 and drop the transactions. So:
//!
//! * a forwarded batch carries `X-Pala-Forward-Mac`, a keyed BLAKE3 MAC of its body under
//!   a key derived from `http.forward_secret_file`, a secret the nodes of one cluster
//!   share (`pala testnet` writes one); the receiver recomputes it and compares in
//!   constant time. A wrong MAC is refused with 401 (a misconfigured peer shows up in its
//!   `pala_forward_failures_total`); an absent one makes the request an ordinary
//!   submission. No other header (in particular no `X-Pala-Forwarded`) is looked at.
//! * whatever the receiver concludes, it forwards only transactions new to it (its mempool
//!   did not hold them), so even without a secret, or with a replayed MAC, forwarding
//!   cannot loop and a client cannot make a node drop a transaction: the worst a forged
//!   or replayed batch does is resubmit transactions, which the mempool and the
//!   application deduplicate by hash.
//!
//! **Clients.** With `http.auth_token` (or `http.auth_token_file`) set, `POST /tx` needs
//! `Authorization: Bearer <token>` (or a valid forward MAC); reads stay open. Tokens are
//! compared as BLAKE3 digests, whose equality is constant-time.

use crate::config::HttpSection;
use anyhow::{bail, Context, Result};
use hyper::header::AUTHORIZATION;
use hyper::HeaderMap;

/// The header carrying a forwarded batch's MAC.
pub const FORWARD_MAC: &str = "x-pala-forward-mac";

const KEY_CONTEXT: &str = "pala-node 2026 http forward mac v1";

/// The node's write credentials: its token and its share of the forward secret.
pub struct Auth {
    token: Option<blake3::Hash>,
    raw_token: Option<String>,
    forward_key: Option<[u8; 32]>,
}

/// What a request's forward MAC says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Forwarded {
    /// No MAC: an ordinary submission.
    No,
    /// A MAC that verifies: forwarded by a node of this cluster.
    Yes,
    /// A MAC that does not verify (or one where this node has no secret).
    Bad,
}

impl Auth {
    /// Reads the token and the forward secret `[http]` names.
    pub fn from_config(h: &HttpSection) -> Result<Auth> {
        let raw_token = if !h.auth_token_file.as_os_str().is_empty() {
            let t = std::fs::read_to_string(&h.auth_token_file)
                .with_context(|| format!("http.auth_token_file {}", h.auth_token_file.display()))?;
            Some(t.trim().to_string())
        } else if !h.auth_token.is_empty() {
            Some(h.auth_token.clone())
        } else {
            None
        };
        if raw_token.as_deref() == Some("") {
            bail!(
                "http.auth_token_file {}: empty",
                h.auth_token_file.display()
            );
        }
        let forward_key = if h.forward_secret_file.as_os_str().is_empty() {
            None
        } else {
            let s = std::fs::read(&h.forward_secret_file).with_context(|| {
                format!(
                    "http.forward_secret_file {}",
                    h.forward_secret_file.display()
                )
            })?;
            let s = s.trim_ascii();
            if s.len() < 16 {
                bail!(
                    "http.forward_secret_file {}: at least 16 bytes of secret expected",
                    h.forward_secret_file.display()
                );
            }
            Some(blake3::derive_key(KEY_CONTEXT, s))
        };
        Ok(Auth::new(raw_token, forward_key))
    }

    /// Credentials from their values (tests).
    pub fn new(token: Option<String>, forward_key: Option<[u8; 32]>) -> Auth {
        Auth {
            token: token.as_deref().map(|t| blake3::hash(t.as_bytes())),
            raw_token: token,
            forward_key,
        }
    }

    /// Whether write endpoints need a token.
    pub fn has_token(&self) -> bool {
        self.token.is_some()
    }

    /// Whether `headers` carry the token (true when none is configured).
    pub fn token_ok(&self, headers: &HeaderMap) -> bool {
        let Some(want) = &self.token else {
            return true;
        };
        let given = headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(|t| blake3::hash(t.trim().as_bytes()));
        given.is_some_and(|g| g == *want)
    }

    /// The headers a forwarded batch carries: its MAC and this node's token.
    pub fn forward_headers(&self, body: &[u8]) -> Vec<(&'static str, String)> {
        let mut h = Vec::new();
        if let Some(k) = &self.forward_key {
            h.push((
                FORWARD_MAC,
                blake3::keyed_hash(k, body).to_hex().to_string(),
            ));
        }
        if let Some(t) = &self.raw_token {
            h.push(("authorization", format!("Bearer {t}")));
        }
        h
    }

    /// Checks a request's forward MAC against its body.
    pub fn forwarded(&self, headers: &HeaderMap, body: &[u8]) -> Forwarded {
        let Some(mac) = headers.get(FORWARD_MAC) else {
            return Forwarded::No;
        };
        let (Some(k), Ok(mac)) = (&self.forward_key, mac.to_str()) else {
            return Forwarded::Bad;
        };
        match blake3::Hash::from_hex(mac.trim()) {
            // blake3::Hash compares in constant time.
            Ok(m) if m == blake3::keyed_hash(k, body) => Forwarded::Yes,
            _ => Forwarded::Bad,
        }
    }
}

/// Writes a fresh random forward secret (hex, mode 0600) to `path`, unless one is there.
pub fn ensure_forward_secret(path: &std::path::Path) -> Result<()> {
    use std::io::{Read, Write};
    use std::os::unix::fs::OpenOptionsExt;
    if path.exists() {
        return Ok(());
    }
    let mut raw = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut raw))
        .context("reading /dev/urandom")?;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    let hex: String = raw.iter().map(|b| format!("{b:02x}")).collect();
    writeln!(f, "{hex}").with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::HeaderValue;

    #[test]
    fn forward_mac_verifies_only_under_the_same_secret() {
        let a = Auth::new(None, Some([1; 32]));
        let b = Auth::new(None, Some([2; 32]));
        let mut h = HeaderMap::new();
        for (k, v) in a.forward_headers(b"tx\n") {
            h.insert(k, HeaderValue::from_str(&v).unwrap());
        }
        assert_eq!(a.forwarded(&h, b"tx\n"), Forwarded::Yes);
        assert_eq!(a.forwarded(&h, b"other\n"), Forwarded::Bad);
        assert_eq!(b.forwarded(&h, b"tx\n"), Forwarded::Bad);
        assert_eq!(a.forwarded(&HeaderMap::new(), b"tx\n"), Forwarded::No);
        let mut forged = HeaderMap::new();
        forged.insert("x-pala-forwarded", HeaderValue::from_static("1"));
        assert_eq!(a.forwarded(&forged, b"tx\n"), Forwarded::No);
    }

    #[test]
    fn bearer_token_is_required_only_when_configured() {
        let open = Auth::new(None, None);
        assert!(open.token_ok(&HeaderMap::new()));
        let closed = Auth::new(Some("s3cret".into()), None);
        assert!(!closed.token_ok(&HeaderMap::new()));
        let mut h = HeaderMap::new();
        h.insert(AUTHORIZATION, HeaderValue::from_static("Bearer wrong"));
        assert!(!closed.token_ok(&h));
        h.insert(AUTHORIZATION, HeaderValue::from_static("Bearer s3cret"));
        assert!(closed.token_ok(&h));
    }
}
