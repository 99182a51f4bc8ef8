//! Bearer tokens: the check the API and the chat webhook share, and the token a daemon on
//! embedded defaults generates for itself.

use std::path::{Path, PathBuf};

use axum::http::header;

/// Compares in time independent of where the bytes differ, so the token cannot be guessed
/// byte by byte from response times.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Whether `request` carries `Authorization: Bearer <token>`.
pub fn is_authorised(headers: &axum::http::HeaderMap, token: &str) -> bool {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|t| constant_time_eq(t.trim().as_bytes(), token.as_bytes()))
}

/// The API bearer token from `api.token` or `api.token_file`; an empty one is none.
pub fn api_token(settings: &rapport_config::Settings) -> Option<String> {
    let token = match (&settings.api.token, &settings.api.token_file) {
        (Some(token), _) => token.trim().to_string(),
        (None, Some(file)) => std::fs::read_to_string(file)
            .ok()?
            .lines()
            .next()?
            .trim()
            .to_string(),
        (None, None) => return None,
    };
    (!token.is_empty()).then_some(token)
}

/// The configured token, or else one generated on first start and kept in
/// `<data_dir>/api.token` (readable by its owner only), so that `rapport run` on embedded
/// defaults serves an API nobody else on the machine can read. Returns the file when the
/// token came from it.
pub fn token_or_generated(
    configured: Option<String>,
    data_dir: &Path,
) -> std::io::Result<(String, Option<PathBuf>)> {
    if let Some(token) = configured {
        return Ok((token, None));
    }
    let file = data_dir.join("api.token");
    if let Some(token) = generated_token(data_dir) {
        return Ok((token, Some(file)));
    }
    let mut bytes = [0u8; 24];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes))?;
    let token = hex::encode(bytes);
    std::fs::create_dir_all(data_dir)?;
    write_private(&file, &format!("{token}\n"))?;
    Ok((token, Some(file)))
}

/// The token a daemon generated into `<data_dir>/api.token`, if there is one.
pub fn generated_token(data_dir: &Path) -> Option<String> {
    let text = std::fs::read_to_string(data_dir.join("api.token")).ok()?;
    let token = text.lines().next()?.trim();
    (!token.is_empty()).then(|| token.to_string())
}

fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(contents.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_token_is_kept_private_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let (first, file) = token_or_generated(None, dir.path()).unwrap();
        assert_eq!(first.len(), 48);
        let file = file.unwrap();
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let (again, _) = token_or_generated(None, dir.path()).unwrap();
        assert_eq!(first, again);
        let (configured, none) = token_or_generated(Some("s3cret".into()), dir.path()).unwrap();
        assert_eq!((configured.as_str(), none), ("s3cret", None));
    }
}
