//! RSA and EC key fixtures, JWKS files and tokens of every algorithm, for the
//! authentication tests.
//!
//! The key pairs in `tests/fixtures/keys/` are test-only keys generated for this
//! repository (see the README there); they are public and protect nothing.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::{Context as _, Result, bail};
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::{Value, json};

use crate::fixtures::fixture;
use crate::token::now;

/// A test key pair: its private PEM file, public PEM file and its kid in `jwks.json`.
#[derive(Debug, Clone, Copy)]
pub struct TestKey {
    /// Algorithm the key signs with.
    pub alg: Algorithm,
    /// File stem in `tests/fixtures/keys/` (`rsa1` → `rsa1.key.pem`, `rsa1.pub.pem`).
    pub stem: &'static str,
    /// The key's `kid` in `tests/fixtures/keys/jwks.json`.
    pub kid: &'static str,
}

/// RSA key 1 (RS256), kid `rsa-2024`.
pub const RSA1: TestKey = TestKey {
    alg: Algorithm::RS256,
    stem: "rsa1",
    kid: "rsa-2024",
};
/// RSA key 2 (RS256), kid `rsa-2025`.
pub const RSA2: TestKey = TestKey {
    alg: Algorithm::RS256,
    stem: "rsa2",
    kid: "rsa-2025",
};
/// EC P-256 key 1 (ES256), kid `ec-2024`.
pub const EC1: TestKey = TestKey {
    alg: Algorithm::ES256,
    stem: "ec1",
    kid: "ec-2024",
};
/// EC P-256 key 2 (ES256), kid `ec-2025`.
pub const EC2: TestKey = TestKey {
    alg: Algorithm::ES256,
    stem: "ec2",
    kid: "ec-2025",
};

impl TestKey {
    /// Path of the public key PEM, for `--jwt-public-key`.
    pub fn public_pem_path(&self) -> String {
        fixture(&format!("keys/{}.pub.pem", self.stem))
            .display()
            .to_string()
    }

    /// The public key PEM text.
    pub fn public_pem(&self) -> Result<String> {
        read(&format!("keys/{}.pub.pem", self.stem))
    }

    /// Signs `claims` (adding `exp` one hour ahead when missing), with the key's kid in
    /// the header when `with_kid`.
    pub fn sign(&self, claims: &Value, with_kid: bool) -> Result<String> {
        self.sign_with_kid(claims, with_kid.then_some(self.kid))
    }

    /// Signs `claims` with this key but names `kid` (any kid, or none) in the header.
    pub fn sign_with_kid(&self, claims: &Value, kid: Option<&str>) -> Result<String> {
        let pem = read(&format!("keys/{}.key.pem", self.stem))?;
        let key = match self.alg {
            Algorithm::RS256 => EncodingKey::from_rsa_pem(pem.as_bytes()),
            _ => EncodingKey::from_ec_pem(pem.as_bytes()),
        }
        .context("bad private key fixture")?;
        let mut header = Header::new(self.alg);
        header.kid = kid.map(str::to_owned);
        encode(&header, &with_exp(claims), &key).context("cannot sign token")
    }
}

fn read(rel: &str) -> Result<String> {
    let path = fixture(rel);
    std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))
}

fn with_exp(claims: &Value) -> Value {
    let mut claims = claims.clone();
    if let Value::Object(map) = &mut claims {
        map.entry("exp").or_insert_with(|| json!(now() + 3600));
    }
    claims
}

/// Path of `tests/fixtures/keys/jwks.json` (all four public keys with their kids).
pub fn jwks_path() -> String {
    fixture("keys/jwks.json").display().to_string()
}

/// A temporary directory for one test's key files, removed on drop.
#[derive(Debug)]
pub struct KeyDir(PathBuf);

impl KeyDir {
    /// A fresh, empty directory.
    pub fn new() -> Result<KeyDir> {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "fanout-test-keys-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        Ok(KeyDir(dir))
    }

    /// Writes a JWKS with only the keys of `kids` (taken from `jwks.json`) to `name`;
    /// returns its path.
    pub fn write_jwks(&self, name: &str, kids: &[&str]) -> Result<String> {
        let all: Value = serde_json::from_str(&read("keys/jwks.json")?)?;
        let Some(keys) = all["keys"].as_array() else {
            bail!("jwks.json has no keys array");
        };
        let picked: Vec<Value> = keys
            .iter()
            .filter(|k| kids.iter().any(|kid| k["kid"] == *kid))
            .cloned()
            .collect();
        self.write(name, &json!({ "keys": picked }).to_string())
    }

    /// Writes `text` to `name` in the directory; returns its path.
    pub fn write(&self, name: &str, text: &str) -> Result<String> {
        let path = self.0.join(name);
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        Ok(path.display().to_string())
    }
}

impl Drop for KeyDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Signs `claims` with HS256 and the raw bytes `secret` (no `exp` added).
pub fn hs256_raw(secret: &[u8], claims: &Value) -> Result<String> {
    let key = EncodingKey::from_secret(secret).context("bad secret")?;
    encode(&Header::new(Algorithm::HS256), claims, &key).context("cannot sign token")
}

/// An unsigned token: header `{"alg":"none","typ":"JWT"}`, `claims`, empty signature.
pub fn alg_none(claims: &Value) -> String {
    format!(
        "{}.{}.",
        b64url(br#"{"alg":"none","typ":"JWT"}"#),
        b64url(claims.to_string().as_bytes())
    )
}

/// `token` with its claims replaced by `claims` and the signature kept (a forgery).
pub fn with_forged_claims(token: &str, claims: &Value) -> String {
    let mut parts = token.splitn(3, '.');
    let header = parts.next().unwrap_or_default();
    let _ = parts.next();
    let signature = parts.next().unwrap_or_default();
    format!(
        "{header}.{}.{signature}",
        b64url(claims.to_string().as_bytes())
    )
}

/// Unpadded base64url.
pub fn b64url(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..=chunk.len() {
            out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
        }
    }
    out
}
