//! Verification keys: where they come from and which algorithm each one is bound to.
//!
//! Every key is bound to exactly one algorithm when it is loaded (an HMAC secret to
//! HS256, an RSA public key to RS256, an EC P-256 public key to ES256). A token is only
//! ever checked against keys bound to the algorithm its header names, so an HS256 token
//! can never be verified with an RSA public key used as an HMAC secret (algorithm
//! confusion), and `alg: none` has no key at all.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::Value;

/// A verification key could not be loaded. Messages name the source, never key bytes.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// A key file could not be read.
    #[error("cannot read {}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// An HMAC secret is empty.
    #[error("{origin}: the HS256 secret is empty")]
    EmptySecret {
        /// Where the secret came from.
        origin: String,
    },
    /// A PEM source holds no usable public key.
    #[error("{origin}: {reason}")]
    Pem {
        /// Where the PEM came from.
        origin: String,
        /// What is wrong (never key material).
        reason: &'static str,
    },
    /// A JWKS file is not a usable JSON Web Key Set.
    #[error("{}: {reason}", path.display())]
    Jwks {
        /// The file.
        path: PathBuf,
        /// What is wrong (never key material).
        reason: String,
    },
    /// No key source was given (the verifier would accept nothing).
    #[error("no verification key configured")]
    NoKeys,
}

/// Where verification keys come from. File sources are read again on reload.
#[derive(Clone, PartialEq, Eq)]
pub enum KeySource {
    /// An HS256 secret given directly (flag or environment variable).
    Secret(Vec<u8>),
    /// A file holding an HS256 secret (surrounding whitespace is ignored).
    SecretFile(PathBuf),
    /// PEM text with one or more public keys (RSA → RS256, EC P-256 → ES256).
    Pem(String),
    /// A PEM file with one or more public keys.
    PemFile(PathBuf),
    /// A JSON Web Key Set file; keys carry their `kid`.
    JwksFile(PathBuf),
}

impl std::fmt::Debug for KeySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Secret(_) => f.write_str("Secret(<redacted>)"),
            Self::SecretFile(p) => f.debug_tuple("SecretFile").field(p).finish(),
            Self::Pem(_) => f.write_str("Pem(..)"),
            Self::PemFile(p) => f.debug_tuple("PemFile").field(p).finish(),
            Self::JwksFile(p) => f.debug_tuple("JwksFile").field(p).finish(),
        }
    }
}

impl KeySource {
    /// The file this source reads, if any.
    pub fn path(&self) -> Option<&Path> {
        match self {
            Self::SecretFile(p) | Self::PemFile(p) | Self::JwksFile(p) => Some(p),
            Self::Secret(_) | Self::Pem(_) => None,
        }
    }

    /// Modification stamp of the source's file (`None` for inline sources or when the
    /// file cannot be inspected), used to notice changes.
    pub fn stamp(&self) -> Option<(SystemTime, u64)> {
        let meta = std::fs::metadata(self.path()?).ok()?;
        Some((meta.modified().ok()?, meta.len()))
    }

    fn load(&self, into: &mut Vec<VerifyKey>) -> Result<(), KeyError> {
        match self {
            Self::Secret(secret) => into.push(hmac_key(secret, "the HS256 secret")?),
            Self::SecretFile(path) => {
                let text = read(path)?;
                into.push(hmac_key(
                    text.trim().as_bytes(),
                    &path.display().to_string(),
                )?);
            }
            Self::Pem(text) => pem_keys(text, "inline PEM", into)?,
            Self::PemFile(path) => pem_keys(&read(path)?, &path.display().to_string(), into)?,
            Self::JwksFile(path) => jwks_keys(&read(path)?, path, into)?,
        }
        Ok(())
    }
}

fn read(path: &Path) -> Result<String, KeyError> {
    std::fs::read_to_string(path).map_err(|source| KeyError::Io {
        path: path.to_owned(),
        source,
    })
}

/// One key, bound to one algorithm.
#[derive(Clone)]
pub struct VerifyKey {
    /// The `kid` it answers to; `None` for keys without one (PEM files, secrets).
    pub kid: Option<String>,
    /// The only algorithm this key verifies.
    pub algorithm: Algorithm,
    pub(crate) key: DecodingKey,
}

impl std::fmt::Debug for VerifyKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifyKey")
            .field("kid", &self.kid)
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

/// Every key currently accepted.
#[derive(Debug, Clone, Default)]
pub struct KeySet {
    keys: Vec<VerifyKey>,
}

impl KeySet {
    /// Loads every source; any failure fails the whole set.
    pub fn load(sources: &[KeySource]) -> Result<Self, KeyError> {
        if sources.is_empty() {
            return Err(KeyError::NoKeys);
        }
        let mut keys = Vec::new();
        for source in sources {
            source.load(&mut keys)?;
        }
        Ok(Self { keys })
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The keys that may verify a token with header `algorithm` and `kid`, always
    /// only keys bound to `algorithm`: for a token with a kid, the key with that kid,
    /// or when no key carries it, the keys without a kid (so an unknown kid never
    /// reaches a key of the set that has another kid); for a token without a kid,
    /// every key of that algorithm.
    pub fn candidates<'a>(
        &'a self,
        algorithm: Algorithm,
        kid: Option<&'a str>,
    ) -> impl Iterator<Item = &'a VerifyKey> + 'a {
        let exact = kid.is_some_and(|kid| self.keys.iter().any(|k| k.kid.as_deref() == Some(kid)));
        self.keys.iter().filter(move |k| {
            k.algorithm == algorithm
                && match kid {
                    None => true,
                    Some(_) if exact => k.kid.as_deref() == kid,
                    Some(_) => k.kid.is_none(),
                }
        })
    }
}

fn hmac_key(secret: &[u8], origin: &str) -> Result<VerifyKey, KeyError> {
    let empty = || KeyError::EmptySecret {
        origin: origin.to_owned(),
    };
    if secret.is_empty() {
        return Err(empty());
    }
    Ok(VerifyKey {
        kid: None,
        algorithm: Algorithm::HS256,
        key: DecodingKey::from_secret(secret).map_err(|_| empty())?,
    })
}

/// Reads every `-----BEGIN ...-----` block of `text` as a public key.
fn pem_keys(text: &str, origin: &str, into: &mut Vec<VerifyKey>) -> Result<(), KeyError> {
    let problem = |reason| KeyError::Pem {
        origin: origin.to_owned(),
        reason,
    };
    let mut found = 0;
    let mut rest = text;
    while let Some(start) = rest.find("-----BEGIN ") {
        let block = &rest[start..];
        let Some(end_marker) = block.find("-----END ") else {
            return Err(problem("unterminated PEM block"));
        };
        let after_end = &block[end_marker + "-----END ".len()..];
        let Some(close) = after_end.find("-----") else {
            return Err(problem("unterminated PEM block"));
        };
        let len = end_marker + "-----END ".len() + close + "-----".len();
        let pem = &block[..len];
        rest = &block[len..];
        let label = pem["-----BEGIN ".len()..]
            .split("-----")
            .next()
            .unwrap_or_default();
        if label.contains("PRIVATE") {
            return Err(problem(
                "holds a private key; give the public key (openssl pkey -pubout)",
            ));
        }
        let key = match label {
            "PUBLIC KEY" | "RSA PUBLIC KEY" => pem_public_key(pem.as_bytes()),
            _ => None,
        }
        .ok_or_else(|| problem("not an RSA or EC P-256 public key in PEM form"))?;
        into.push(key);
        found += 1;
    }
    if found == 0 {
        return Err(problem("no PEM public key found"));
    }
    Ok(())
}

fn pem_public_key(pem: &[u8]) -> Option<VerifyKey> {
    if let Ok(key) = DecodingKey::from_rsa_pem(pem) {
        return Some(VerifyKey {
            kid: None,
            algorithm: Algorithm::RS256,
            key,
        });
    }
    let key = DecodingKey::from_ec_pem(pem).ok()?;
    // An uncompressed P-256 point is 65 bytes; other curves are not ES256 keys.
    let point_len = match key.kind() {
        jsonwebtoken::DecodingKeyKind::SecretOrDer(bytes) => bytes.len(),
        jsonwebtoken::DecodingKeyKind::RsaModulusExponent { .. } => 0,
    };
    (point_len == 65).then_some(VerifyKey {
        kid: None,
        algorithm: Algorithm::ES256,
        key,
    })
}

/// Reads a JWKS. Keys meant for encryption (`use: enc`) are skipped; any other key
/// that is not an RS256, ES256 (P-256) or HS256 key makes the file invalid, so a typo
/// never silently drops a key.
fn jwks_keys(text: &str, path: &Path, into: &mut Vec<VerifyKey>) -> Result<(), KeyError> {
    let bad = |reason: String| KeyError::Jwks {
        path: path.to_owned(),
        reason,
    };
    let set: Value =
        serde_json::from_str(text).map_err(|e| bad(format!("not JSON (line {})", e.line())))?;
    let Some(Value::Array(entries)) = set.get("keys") else {
        return Err(bad("no \"keys\" array".into()));
    };
    let mut found = 0;
    for (i, entry) in entries.iter().enumerate() {
        if entry.get("use").and_then(Value::as_str) == Some("enc") {
            continue;
        }
        let jwk: Jwk = serde_json::from_value(entry.clone())
            .map_err(|_| bad(format!("key #{i} is not a valid JWK")))?;
        let key = jwk_key(&jwk).map_err(|reason| bad(format!("key #{i}: {reason}")))?;
        into.push(key);
        found += 1;
    }
    if found == 0 {
        return Err(bad("no signing key in the set".into()));
    }
    Ok(())
}

fn jwk_key(jwk: &Jwk) -> Result<VerifyKey, &'static str> {
    if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)) {
        return Err("meant for encryption");
    }
    let algorithm = match (&jwk.algorithm, jwk.common.key_algorithm) {
        (AlgorithmParameters::RSA(_), None | Some(KeyAlgorithm::RS256)) => Algorithm::RS256,
        (AlgorithmParameters::EllipticCurve(p), None | Some(KeyAlgorithm::ES256))
            if p.curve == EllipticCurve::P256 =>
        {
            Algorithm::ES256
        }
        (AlgorithmParameters::OctetKey(_), None | Some(KeyAlgorithm::HS256)) => Algorithm::HS256,
        _ => return Err("not an RS256, ES256 (P-256) or HS256 key"),
    };
    let key = DecodingKey::from_jwk(jwk).map_err(|_| "unreadable key parameters")?;
    Ok(VerifyKey {
        kid: jwk.common.key_id.clone(),
        algorithm,
        key,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::security::test_keys::{fixture, fixture_path};

    #[test]
    fn pem_files_bind_keys_to_their_algorithm() {
        let set = KeySet::load(&[
            KeySource::Pem(fixture("rsa1.pub.pem")),
            KeySource::PemFile(fixture_path("ec1.pub.pem")),
            KeySource::Secret(b"s".to_vec()),
        ])
        .expect("keys");
        let algs: Vec<_> = set.keys.iter().map(|k| k.algorithm).collect();
        assert_eq!(algs, [Algorithm::RS256, Algorithm::ES256, Algorithm::HS256]);
        assert_eq!(set.candidates(Algorithm::RS256, None).count(), 1);
        assert_eq!(set.candidates(Algorithm::RS384, None).count(), 0);
    }

    #[test]
    fn several_pem_blocks_in_one_file_are_all_read() {
        let two = format!("{}\n{}", fixture("rsa1.pub.pem"), fixture("rsa2.pub.pem"));
        let set = KeySet::load(&[KeySource::Pem(two)]).expect("keys");
        assert_eq!(set.len(), 2);
    }

    #[test]
    fn private_keys_and_garbage_are_refused_without_echoing_them() {
        let e = KeySet::load(&[KeySource::Pem(fixture("rsa1.key.pem"))]).expect_err("private");
        assert!(e.to_string().contains("private key"), "{e}");
        let e = KeySet::load(&[KeySource::Pem("hello SECRET".into())]).expect_err("garbage");
        assert!(!e.to_string().contains("SECRET"), "{e}");
        assert!(matches!(
            KeySet::load(&[KeySource::Secret(Vec::new())]),
            Err(KeyError::EmptySecret { .. })
        ));
        assert!(matches!(KeySet::load(&[]), Err(KeyError::NoKeys)));
        assert!(matches!(
            KeySet::load(&[KeySource::PemFile("/nonexistent/k.pem".into())]),
            Err(KeyError::Io { .. })
        ));
    }

    #[test]
    fn jwks_keys_keep_their_kid_and_unknown_kids_match_nothing() {
        let set = KeySet::load(&[KeySource::JwksFile(fixture_path("jwks.json"))]).expect("jwks");
        assert_eq!(set.len(), 4);
        let rs: Vec<_> = set
            .candidates(Algorithm::RS256, Some("rsa-2025"))
            .map(|k| k.kid.clone())
            .collect();
        assert_eq!(rs, [Some("rsa-2025".to_owned())]);
        // The right kid with the wrong algorithm: no key.
        assert_eq!(
            set.candidates(Algorithm::HS256, Some("rsa-2025")).count(),
            0
        );
        assert_eq!(set.candidates(Algorithm::RS256, Some("nope")).count(), 0);
        assert_eq!(set.candidates(Algorithm::ES256, None).count(), 2);
    }

    #[test]
    fn jwks_with_unsupported_keys_is_refused() {
        let dir = std::env::temp_dir().join(format!("fanout-jwks-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("bad.json");
        std::fs::write(
            &path,
            r#"{"keys":[{"kty":"RSA","alg":"RS512","kid":"a","n":"AQAB","e":"AQAB"}]}"#,
        )
        .expect("write");
        let e = KeySet::load(&[KeySource::JwksFile(path.clone())]).expect_err("RS512");
        assert!(e.to_string().contains("key #0"), "{e}");
        std::fs::write(
            &path,
            r#"{"keys":[{"kty":"RSA","use":"enc","n":"AQAB","e":"AQAB"}]}"#,
        )
        .expect("write");
        let e = KeySet::load(&[KeySource::JwksFile(path)]).expect_err("only enc");
        assert!(e.to_string().contains("no signing key"), "{e}");
        let _ = std::fs::remove_dir_all(dir);
    }
}
