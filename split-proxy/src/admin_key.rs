//! The generated admin key: when no key is configured, a random 40-character key is
//! created once in `DATA/admin.key` (mode 0600), printed once, and reused on later starts.

use std::io::Write;
use std::path::{Path, PathBuf};

use rand_core::{OsRng, RngCore};

/// Length of a generated key.
pub const KEY_LEN: usize = 40;
const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// The key file path in `data_dir`.
pub fn path(data_dir: &Path) -> PathBuf {
    data_dir.join("admin.key")
}

/// Loads the key from `data_dir/admin.key`, or generates and stores one.
/// Returns the key and whether it was generated now.
pub fn load_or_generate(data_dir: &Path) -> Result<(String, bool), String> {
    let file = path(data_dir);
    match std::fs::read_to_string(&file) {
        Ok(text) => {
            let key = text.trim().to_owned();
            if key.len() < split_core::admin_auth::MIN_ADMIN_KEY_LEN {
                return Err(format!(
                    "{}: stored admin key is shorter than {} characters",
                    file.display(),
                    split_core::admin_auth::MIN_ADMIN_KEY_LEN
                ));
            }
            return Ok((key, false));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(format!("{}: {e}", file.display())),
    }
    std::fs::create_dir_all(data_dir).map_err(|e| format!("{}: {e}", data_dir.display()))?;
    let key = generate();
    write_private(&file, &key).map_err(|e| format!("{}: {e}", file.display()))?;
    Ok((key, true))
}

/// A random key of [`KEY_LEN`] alphanumeric characters (rejection sampling, no bias).
pub fn generate() -> String {
    let mut key = String::with_capacity(KEY_LEN);
    let mut buf = [0u8; 64];
    while key.len() < KEY_LEN {
        OsRng.fill_bytes(&mut buf);
        for b in buf {
            // 62 * 4 = 248: bytes below 248 map uniformly onto the alphabet.
            if b < 248 && key.len() < KEY_LEN {
                key.push(char::from(ALPHABET[usize::from(b % 62)]));
            }
        }
    }
    key
}

fn write_private(file: &Path, key: &str) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut f = options.open(file)?;
    f.write_all(key.as_bytes())?;
    f.write_all(b"\n")?;
    f.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_is_generated_once_private_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let (key, generated) = load_or_generate(&data).unwrap();
        assert!(generated);
        assert_eq!(key.len(), KEY_LEN);
        assert!(key.bytes().all(|b| b.is_ascii_alphanumeric()));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(path(&data)).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let (again, generated) = load_or_generate(&data).unwrap();
        assert!(!generated);
        assert_eq!(again, key);
        assert_ne!(generate(), key);
    }
}
