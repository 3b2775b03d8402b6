//! `[http]`: the API's address, its resource limits and who may write.

use super::{bad, parse_addr, ConfigError};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// `[http]`
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct HttpSection {
    /// Listen address "ip:port" of the API (empty: no API).
    pub listen: String,
    /// Worker threads of the API's runtime.
    pub threads: usize,
    /// HTTP addresses of the proposers: transactions submitted here are forwarded to them
    /// so that whichever is primary can include them.
    pub forward_to: Vec<String>,
    /// Most connections open at once; one more is refused with a 503 and closed.
    pub max_connections: usize,
    /// A request head (request line and headers) must arrive within this long.
    pub header_timeout_ms: u64,
    /// A request body must arrive within this long of its head.
    pub body_timeout_ms: u64,
    /// A connection on which no byte moved in either direction this long is closed.
    pub idle_timeout_ms: u64,
    /// Largest request head (request line and headers); larger gets 431.
    pub max_header_bytes: usize,
    /// Largest request body; larger gets 413.
    pub max_body_bytes: usize,
    /// Bearer token required on write endpoints (`POST /tx`); empty: none.
    pub auth_token: String,
    /// File holding the bearer token (instead of `auth_token`).
    pub auth_token_file: PathBuf,
    /// File holding the secret the nodes of one cluster share to authenticate forwarded
    /// transactions (`pala testnet` writes one); empty: forwarding is unauthenticated.
    pub forward_secret_file: PathBuf,
}

impl Default for HttpSection {
    fn default() -> Self {
        HttpSection {
            listen: String::new(),
            threads: 2,
            forward_to: Vec::new(),
            max_connections: 512,
            header_timeout_ms: 10_000,
            body_timeout_ms: 10_000,
            idle_timeout_ms: 60_000,
            max_header_bytes: 16 << 10,
            max_body_bytes: 8 << 20,
            auth_token: String::new(),
            auth_token_file: PathBuf::new(),
            forward_secret_file: PathBuf::new(),
        }
    }
}

/// hyper refuses a smaller read buffer, and a head must fit in it.
const MIN_HEADER_BYTES: usize = 8192;

impl HttpSection {
    pub(super) fn resolve_paths(&mut self, base: &Path) {
        for p in [&mut self.auth_token_file, &mut self.forward_secret_file] {
            if !p.as_os_str().is_empty() && p.is_relative() {
                *p = base.join(&*p);
            }
        }
    }

    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if !self.listen.is_empty() {
            parse_addr("http.listen", &self.listen)?;
        }
        for (i, a) in self.forward_to.iter().enumerate() {
            parse_addr(&format!("http.forward_to[{i}]"), a)?;
        }
        for (k, v) in [
            ("http.threads", self.threads as u64),
            ("http.max_connections", self.max_connections as u64),
            ("http.header_timeout_ms", self.header_timeout_ms),
            ("http.body_timeout_ms", self.body_timeout_ms),
            ("http.idle_timeout_ms", self.idle_timeout_ms),
            ("http.max_body_bytes", self.max_body_bytes as u64),
        ] {
            if v == 0 {
                return Err(bad(k, "must be a positive integer"));
            }
        }
        if self.max_header_bytes < MIN_HEADER_BYTES {
            return Err(bad(
                "http.max_header_bytes",
                format!("must be at least {MIN_HEADER_BYTES}"),
            ));
        }
        if !self.auth_token.is_empty() && !self.auth_token_file.as_os_str().is_empty() {
            return Err(bad(
                "http.auth_token",
                "set either http.auth_token or http.auth_token_file, not both",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key_of(e: ConfigError) -> String {
        match e {
            ConfigError::Value { key, .. } => key,
            e => panic!("{e}"),
        }
    }

    #[test]
    fn http_limits_and_credentials_are_checked() {
        assert!(HttpSection::default().validate().is_ok());
        let small = HttpSection {
            max_header_bytes: 4096,
            ..Default::default()
        };
        assert_eq!(
            key_of(small.validate().unwrap_err()),
            "http.max_header_bytes"
        );
        let zero = HttpSection {
            body_timeout_ms: 0,
            ..Default::default()
        };
        assert_eq!(key_of(zero.validate().unwrap_err()), "http.body_timeout_ms");
        let both = HttpSection {
            auth_token: "t".into(),
            auth_token_file: "f".into(),
            ..Default::default()
        };
        assert_eq!(key_of(both.validate().unwrap_err()), "http.auth_token");
    }
}
