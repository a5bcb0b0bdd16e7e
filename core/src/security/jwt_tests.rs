use std::time::Duration;

use jsonwebtoken::Algorithm;
use serde_json::json;

use super::*;
use crate::security::test_keys::{b64url, fixture, fixture_path, now, sign};

fn verifier(keys: Vec<KeySource>) -> JwtVerifier {
    JwtVerifier::new(VerifierConfig {
        keys,
        leeway: Duration::ZERO,
        ..VerifierConfig::default()
    })
    .expect("verifier")
}

fn pem(name: &str) -> KeySource {
    KeySource::PemFile(fixture_path(name))
}

fn hs(claims: &Value) -> String {
    sign(Algorithm::HS256, None, b"s3cret", claims)
}

#[test]
fn hs256_valid_token_yields_context_and_expiry() {
    let v = JwtVerifier::hs256(b"s3cret").expect("key");
    let t = hs(
        &json!({"sub":"u1","tenant":"t1","roles":["b","a"],"scope":"x y","exp": 4_000_000_000u64}),
    );
    let verified = v.verify(Some(&t)).expect("valid");
    let ctx = verified.context;
    assert_eq!(ctx.subject.as_deref(), Some("u1"));
    assert_eq!(ctx.tenant.as_deref(), Some("t1"));
    assert_eq!(ctx.roles, vec!["a", "b"]);
    assert_eq!(ctx.scopes, vec!["x", "y"]);
    assert!(!ctx.claims.contains_key("exp"));
    // Accepted until exp plus the leeway.
    assert_eq!(
        verified.expires_at,
        Some(UNIX_EPOCH + Duration::from_secs(4_000_000_000) + DEFAULT_LEEWAY)
    );
}

#[test]
fn rs256_and_es256_tokens_verify_against_their_public_keys() {
    let v = verifier(vec![pem("rsa1.pub.pem"), pem("ec1.pub.pem")]);
    let claims = json!({"sub":"u1","exp": now() + 60});
    let rs = sign(
        Algorithm::RS256,
        None,
        fixture("rsa1.key.pem").as_bytes(),
        &claims,
    );
    let es = sign(
        Algorithm::ES256,
        None,
        fixture("ec1.key.pem").as_bytes(),
        &claims,
    );
    assert!(v.verify(Some(&rs)).is_ok());
    assert!(v.verify(Some(&es)).is_ok());
    // Signed by keys the verifier does not know.
    let rs2 = sign(
        Algorithm::RS256,
        None,
        fixture("rsa2.key.pem").as_bytes(),
        &claims,
    );
    let es2 = sign(
        Algorithm::ES256,
        None,
        fixture("ec2.key.pem").as_bytes(),
        &claims,
    );
    assert_eq!(v.verify(Some(&rs2)), Err(AuthError::BadSignature));
    assert_eq!(v.verify(Some(&es2)), Err(AuthError::BadSignature));
}

#[test]
fn forged_expired_immature_and_missing_are_refused() {
    let v = verifier(vec![KeySource::Secret(b"s3cret".to_vec())]);
    let forged = sign(Algorithm::HS256, None, b"other", &json!({"sub":"u1"}));
    assert_eq!(v.verify(Some(&forged)), Err(AuthError::BadSignature));
    let expired = hs(&json!({"sub":"u1","exp": now() - 10}));
    assert_eq!(v.verify(Some(&expired)), Err(AuthError::Expired));
    let immature = hs(&json!({"sub":"u1","nbf": now() + 60}));
    assert_eq!(v.verify(Some(&immature)), Err(AuthError::NotYetValid));
    assert_eq!(v.verify(None), Err(AuthError::Missing));
    assert_eq!(v.verify(Some("garbage")), Err(AuthError::Malformed));
    assert_eq!(
        v.verify(Some(&"a".repeat(20_000))),
        Err(AuthError::Malformed)
    );
    // Tampering with the claims breaks the signature.
    let good = hs(&json!({"sub":"u1","roles":["user"]}));
    let mut parts: Vec<&str> = good.split('.').collect();
    let admin = b64url(br#"{"sub":"u1","roles":["admin"]}"#);
    parts[1] = &admin;
    assert_eq!(
        v.verify(Some(&parts.join("."))),
        Err(AuthError::BadSignature)
    );
}

#[test]
fn leeway_tolerates_small_clock_skew() {
    let v = JwtVerifier::new(VerifierConfig {
        keys: vec![KeySource::Secret(b"s3cret".to_vec())],
        leeway: Duration::from_secs(30),
        ..VerifierConfig::default()
    })
    .expect("verifier");
    assert!(v.verify(Some(&hs(&json!({"exp": now() - 10})))).is_ok());
    assert!(v.verify(Some(&hs(&json!({"nbf": now() + 10})))).is_ok());
    assert_eq!(
        v.verify(Some(&hs(&json!({"exp": now() - 60})))),
        Err(AuthError::Expired)
    );
}

#[test]
fn alg_none_is_refused() {
    let v = verifier(vec![KeySource::Secret(b"s3cret".to_vec())]);
    for header in [
        r#"{"alg":"none","typ":"JWT"}"#,
        r#"{"alg":"None"}"#,
        r#"{"typ":"JWT"}"#,
    ] {
        let token = format!(
            "{}.{}.",
            b64url(header.as_bytes()),
            b64url(br#"{"sub":"admin"}"#)
        );
        assert_eq!(
            v.verify(Some(&token)),
            Err(AuthError::Malformed),
            "{header}"
        );
    }
}

#[test]
fn algorithm_confusion_is_refused() {
    // The attacker signs HS256 with the RSA public key's PEM bytes as the secret.
    let public_pem = fixture("rsa1.pub.pem");
    let claims = json!({"sub":"admin"});
    let forged = sign(Algorithm::HS256, None, public_pem.as_bytes(), &claims);
    let only_rsa = verifier(vec![pem("rsa1.pub.pem")]);
    assert_eq!(only_rsa.verify(Some(&forged)), Err(AuthError::UnknownKey));
    // With an HS256 secret configured as well, only that secret is tried.
    let both = verifier(vec![
        pem("rsa1.pub.pem"),
        KeySource::Secret(b"s3cret".to_vec()),
    ]);
    assert_eq!(both.verify(Some(&forged)), Err(AuthError::BadSignature));
    // And the same with a JWKS (RSA key with kid, the token naming that kid).
    let jwks = verifier(vec![KeySource::JwksFile(fixture_path("jwks.json"))]);
    let forged = sign(
        Algorithm::HS256,
        Some("rsa-2024"),
        public_pem.as_bytes(),
        &claims,
    );
    assert_eq!(jwks.verify(Some(&forged)), Err(AuthError::UnknownKey));
    // An RS256 header on an ES256 key's kid: no key either.
    let es = sign(
        Algorithm::ES256,
        Some("rsa-2024"),
        fixture("ec1.key.pem").as_bytes(),
        &claims,
    );
    assert_eq!(jwks.verify(Some(&es)), Err(AuthError::UnknownKey));
}

#[test]
fn jwks_selects_keys_by_kid() {
    let v = verifier(vec![KeySource::JwksFile(fixture_path("jwks.json"))]);
    let claims = json!({"sub":"u1"});
    for (alg, kid, key) in [
        (Algorithm::RS256, "rsa-2024", "rsa1.key.pem"),
        (Algorithm::RS256, "rsa-2025", "rsa2.key.pem"),
        (Algorithm::ES256, "ec-2024", "ec1.key.pem"),
        (Algorithm::ES256, "ec-2025", "ec2.key.pem"),
    ] {
        let t = sign(alg, Some(kid), fixture(key).as_bytes(), &claims);
        assert!(v.verify(Some(&t)).is_ok(), "{kid}");
    }
    // The right key under another key's kid fails; an unknown kid finds no key.
    let swapped = sign(
        Algorithm::RS256,
        Some("rsa-2024"),
        fixture("rsa2.key.pem").as_bytes(),
        &claims,
    );
    assert_eq!(v.verify(Some(&swapped)), Err(AuthError::BadSignature));
    let unknown = sign(
        Algorithm::RS256,
        Some("rsa-1999"),
        fixture("rsa1.key.pem").as_bytes(),
        &claims,
    );
    assert_eq!(v.verify(Some(&unknown)), Err(AuthError::UnknownKey));
    // Without a kid every key of the algorithm is tried.
    let no_kid = sign(
        Algorithm::ES256,
        None,
        fixture("ec2.key.pem").as_bytes(),
        &claims,
    );
    assert!(v.verify(Some(&no_kid)).is_ok());
}

#[test]
fn issuer_and_audience_are_enforced_when_configured() {
    let v = JwtVerifier::new(VerifierConfig {
        keys: vec![KeySource::Secret(b"s3cret".to_vec())],
        issuers: vec!["https://idp.example".into()],
        audiences: vec!["fanout".into()],
        ..VerifierConfig::default()
    })
    .expect("verifier");
    let ok = hs(&json!({"iss":"https://idp.example","aud":["x","fanout"]}));
    assert!(v.verify(Some(&ok)).is_ok());
    let cases = [
        (
            json!({"iss":"https://evil.example","aud":"fanout"}),
            AuthError::WrongIssuer,
        ),
        (json!({"aud":"fanout"}), AuthError::WrongIssuer),
        (
            json!({"iss":"https://idp.example","aud":"other"}),
            AuthError::WrongAudience,
        ),
        (
            json!({"iss":"https://idp.example"}),
            AuthError::WrongAudience,
        ),
    ];
    for (claims, want) in cases {
        assert_eq!(v.verify(Some(&hs(&claims))), Err(want), "{claims}");
    }
    // Without configured audiences, a token's aud is not checked.
    let plain = verifier(vec![KeySource::Secret(b"s3cret".to_vec())]);
    assert!(plain.verify(Some(&hs(&json!({"aud":"anything"})))).is_ok());
}

#[test]
fn anonymous_access_only_when_configured() {
    let open = JwtVerifier::anonymous();
    assert!(!open.requires_token());
    assert_eq!(
        open.verify(Some("ignored")).map(|v| v.context),
        Ok(SecurityContext::anonymous())
    );
    let optional = JwtVerifier::new(VerifierConfig {
        keys: vec![KeySource::Secret(b"s3cret".to_vec())],
        allow_anonymous: true,
        ..VerifierConfig::default()
    })
    .expect("verifier");
    assert!(!optional.requires_token());
    assert_eq!(
        optional.verify(None).map(|v| v.context),
        Ok(SecurityContext::anonymous())
    );
    // A token that is present must still be valid.
    let forged = sign(Algorithm::HS256, None, b"other", &json!({}));
    assert_eq!(optional.verify(Some(&forged)), Err(AuthError::BadSignature));
    let required = verifier(vec![KeySource::Secret(b"s3cret".to_vec())]);
    assert!(required.requires_token());
    assert_eq!(required.verify(None), Err(AuthError::Missing));
}

#[test]
fn required_exp_and_claim_paths() {
    let v = JwtVerifier::new(VerifierConfig {
        keys: vec![KeySource::Secret(b"s3cret".to_vec())],
        require_exp: true,
        claims: ClaimPaths {
            subject: "uid".into(),
            tenant: "https://example.com/claims.tenant".into(),
            roles: "realm_access.roles".into(),
            scopes: vec!["scp".into()],
        },
        ..VerifierConfig::default()
    })
    .expect("verifier");
    assert_eq!(
        v.verify(Some(&hs(&json!({"sub":"u1"})))),
        Err(AuthError::BadClaims)
    );
    let t = hs(&json!({
        "uid": "u9", "exp": now() + 60,
        "https://example.com/claims": {"tenant": "acme"},
        "realm_access": {"roles": ["editor"]},
        "scp": ["a:read"],
    }));
    let ctx = v.verify(Some(&t)).expect("valid").context;
    assert_eq!(ctx.subject.as_deref(), Some("u9"));
    assert_eq!(ctx.tenant.as_deref(), Some("acme"));
    assert_eq!(ctx.roles, ["editor"]);
    assert_eq!(ctx.scopes, ["a:read"]);
}

#[test]
fn key_files_are_reloaded_when_they_change() {
    let dir = std::env::temp_dir().join(format!("fanout-reload-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join("keys.pem");
    std::fs::write(&path, fixture("rsa1.pub.pem")).expect("write");
    let v = verifier(vec![KeySource::PemFile(path.clone())]);
    let claims = json!({"sub":"u1"});
    let t2 = sign(
        Algorithm::RS256,
        None,
        fixture("rsa2.key.pem").as_bytes(),
        &claims,
    );
    assert_eq!(v.verify(Some(&t2)), Err(AuthError::BadSignature));
    assert_eq!(v.reload_if_changed().expect("reload"), None);

    let both = format!("{}{}", fixture("rsa1.pub.pem"), fixture("rsa2.pub.pem"));
    std::fs::write(&path, both).expect("write");
    assert_eq!(v.reload_if_changed().expect("reload"), Some(2));
    assert!(v.verify(Some(&t2)).is_ok());

    // A broken file keeps the keys that were loaded.
    std::fs::write(&path, "-----BEGIN PUBLIC KEY-----\nbroken").expect("write");
    assert!(v.reload_if_changed().is_err());
    assert!(v.verify(Some(&t2)).is_ok());
    let _ = std::fs::remove_dir_all(dir);
}
