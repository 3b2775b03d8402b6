//! The on-disk secret key file: 64 hex characters (the 32-byte big-endian scalar) and an
//! optional trailing newline, readable by its owner only.

use crate::error::KeyFileError;
use std::io::Write;
use std::path::Path;
use zeroize::{Zeroize, Zeroizing};

/// Number of hex characters in a secret key file.
pub const SECRET_HEX_LEN: usize = 64;

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> KeyFileError + '_ {
    move |source| KeyFileError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Writes `secret` to a new file created with mode 0600; never overwrites.
pub(crate) fn write_secret(path: &Path, secret: &[u8; 32]) -> Result<(), KeyFileError> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        // Created with 0600 directly so the secret is never briefly world-readable.
        opts.mode(0o600);
    }
    let mut f = opts.open(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            KeyFileError::AlreadyExists {
                path: path.to_path_buf(),
            }
        } else {
            KeyFileError::Io {
                path: path.to_path_buf(),
                source: e,
            }
        }
    })?;
    let mut text = Zeroizing::new(crate::hex::encode(secret));
    text.push('\n');
    f.write_all(text.as_bytes()).map_err(io(path))?;
    f.sync_all().map_err(io(path))?;
    Ok(())
}

/// Reads a secret key file, checking permissions, length and encoding (not yet the scalar
/// range: that is the caller's, who knows the curve).
pub(crate) fn read_secret(path: &Path) -> Result<Zeroizing<[u8; 32]>, KeyFileError> {
    let meta = std::fs::metadata(path).map_err(io(path))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(KeyFileError::Permissions {
                path: path.to_path_buf(),
                mode,
            });
        }
    }
    // A key file is 65 bytes; refuse to read something huge into memory by mistake.
    if meta.len() > 4096 {
        return Err(KeyFileError::Length {
            path: path.to_path_buf(),
            expected: SECRET_HEX_LEN,
            found: meta.len() as usize,
        });
    }
    let mut raw = Zeroizing::new(std::fs::read(path).map_err(io(path))?);
    let mut text: &[u8] = &raw;
    if let Some(t) = text.strip_suffix(b"\n") {
        text = t.strip_suffix(b"\r").unwrap_or(t);
    }
    if text.len() != SECRET_HEX_LEN {
        return Err(KeyFileError::Length {
            path: path.to_path_buf(),
            expected: SECRET_HEX_LEN,
            found: text.len(),
        });
    }
    let text = std::str::from_utf8(text).map_err(|_| KeyFileError::Encoding {
        path: path.to_path_buf(),
        detail: "not ASCII".into(),
    })?;
    let mut bytes = crate::hex::decode(text).map_err(|detail| KeyFileError::Encoding {
        path: path.to_path_buf(),
        detail,
    })?;
    let mut out = Zeroizing::new([0u8; 32]);
    out.copy_from_slice(&bytes);
    bytes.zeroize();
    raw.zeroize();
    Ok(out)
}
