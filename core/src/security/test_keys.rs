//! Test-only key fixtures (`tests/fixtures/keys/`, public test keys) and token minting.

use std::path::PathBuf;

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::Value;

/// Path of `tests/fixtures/keys/<name>`.
pub fn fixture_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/keys")
        .join(name)
}

/// Contents of `tests/fixtures/keys/<name>`.
pub fn fixture(name: &str) -> String {
    std::fs::read_to_string(fixture_path(name)).expect("key fixture")
}

/// Signs `claims` with `alg` and `kid` using the private key fixture `key` (PEM) or,
/// for HS256, the bytes of `key`.
pub fn sign(alg: Algorithm, kid: Option<&str>, key: &[u8], claims: &Value) -> String {
    let key = match alg {
        Algorithm::HS256 => EncodingKey::from_secret(key).expect("secret"),
        Algorithm::RS256 => EncodingKey::from_rsa_pem(key).expect("rsa key"),
        Algorithm::ES256 => EncodingKey::from_ec_pem(key).expect("ec key"),
        other => panic!("no test signer for {other:?}"),
    };
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&header, claims, &key).expect("encode")
}

/// Unpadded base64url, for hand-made tokens.
pub fn b64url(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..=chunk.len() {
            out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
        }
    }
    out
}

/// Seconds since the Unix epoch.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}
