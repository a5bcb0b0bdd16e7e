//! Client authentication against the real binary with a real WebSocket client: HS256,
//! RS256 and ES256 keys from flags, env and JWKS files; expiry, `nbf`, `iss`, `aud`;
//! `alg: none`, forged signatures and algorithm confusion; key rotation by `kid` and
//! reloading; claim paths; token refresh by `ping`; the upgrade `Authorization` header;
//! anonymous access.

use std::time::{Duration, Instant};

use fanout_tests::keys::{self, EC1, EC2, KeyDir, RSA1, RSA2, TestKey};
use fanout_tests::token::{self, SECRET, now};
use fanout_tests::{Fanout, GqlClient, Publisher, Result, Value, bail, ensure, eventually, json};

const TICK: &str = r#"subscription { tick(room: "a") { n } }"#;
const ADMIN_ONLY: &str = r#"subscription { adminOnly(room: "r") { n } }"#;
const SCOPED: &str = r#"subscription { scoped(room: "r") { n } }"#;
const WHOAMI: &str = r#"subscription { whoami(room: "r") { tenant subject roles scopes } }"#;

fn user() -> Value {
    json!({ "sub": "u1", "tenant": "t1", "roles": ["admin"], "scope": "tick:read" })
}

/// Connects and sends `connection_init` with `{"token": token}`; the server must close
/// with 4403 without echoing the token.
async fn expect_refused(url: &str, token: &str) -> Result<()> {
    let mut c = GqlClient::connect(url).await?;
    c.send_json(&json!({ "type": "connection_init", "payload": { "token": token } }))
        .await?;
    let reason = c.expect_close(4403).await?;
    ensure!(
        !token.is_empty() && !reason.contains(token) && reason.len() < 40,
        "4403 reason leaks detail: {reason:?}"
    );
    Ok(())
}

async fn expect_accepted(url: &str, token: &str) -> Result<GqlClient> {
    GqlClient::connect_with_token(url, token).await
}

fn key_args(key: &TestKey) -> Vec<String> {
    vec!["--jwt-public-key".into(), key.public_pem_path()]
}

async fn suite(extra: &[String]) -> Result<Fanout> {
    let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
    Fanout::suite(&extra).await
}

#[tokio::test]
async fn hs256_valid_forged_tampered_and_missing_tokens() -> Result<()> {
    let fanout = Fanout::suite(&["--jwt-secret", SECRET]).await?;
    let good = token::user("u1", "t1", &["admin"], &[])?;
    let mut c = expect_accepted(&fanout.ws_url, &good).await?;
    c.ping().await?;
    expect_refused(&fanout.ws_url, &token::mint("another-secret", &user())?).await?;
    let admin = json!({ "sub": "u1", "roles": ["superuser"], "exp": now() + 3600 });
    expect_refused(&fanout.ws_url, &keys::with_forged_claims(&good, &admin)).await?;
    expect_refused(&fanout.ws_url, "not-a-jwt").await?;
    // No token at all.
    let mut c = GqlClient::connect(&fanout.ws_url).await?;
    c.send_json(&json!({ "type": "connection_init" })).await?;
    ensure!(c.expect_close(4403).await? == "Forbidden");
    Ok(())
}

#[tokio::test]
async fn rs256_tokens_verify_only_against_the_configured_public_key() -> Result<()> {
    let fanout = suite(&key_args(&RSA1)).await?;
    expect_accepted(&fanout.ws_url, &RSA1.sign(&user(), false)?).await?;
    expect_refused(&fanout.ws_url, &RSA2.sign(&user(), false)?).await?;
    expect_refused(&fanout.ws_url, &EC1.sign(&user(), false)?).await?;
    expect_refused(&fanout.ws_url, &token::user("u1", "t1", &[], &[])?).await?;
    Ok(())
}

#[tokio::test]
async fn es256_key_from_an_environment_variable() -> Result<()> {
    let mut args = fanout_tests::fixtures::suite_args();
    args.extend(["--jwt-leeway-secs".into(), "0".into()]);
    let fanout =
        Fanout::start_with_env(args, [("FANOUT_JWT_PUBLIC_KEY_PEM", EC1.public_pem()?)]).await?;
    expect_accepted(&fanout.ws_url, &EC1.sign(&user(), false)?).await?;
    expect_refused(&fanout.ws_url, &EC2.sign(&user(), false)?).await?;
    expect_refused(&fanout.ws_url, &RSA1.sign(&user(), false)?).await?;
    Ok(())
}

#[tokio::test]
async fn expired_and_not_yet_valid_tokens_are_refused() -> Result<()> {
    let fanout = Fanout::suite(&["--jwt-secret", SECRET, "--jwt-leeway-secs", "0"]).await?;
    let expired = json!({ "sub": "u1", "exp": now() - 10 });
    expect_refused(&fanout.ws_url, &token::mint(SECRET, &expired)?).await?;
    let early = json!({ "sub": "u1", "nbf": now() + 60 });
    expect_refused(&fanout.ws_url, &token::mint(SECRET, &early)?).await?;
    for key in [RSA1, EC1] {
        let fanout =
            suite(&[key_args(&key), vec!["--jwt-leeway-secs".into(), "0".into()]].concat()).await?;
        expect_refused(&fanout.ws_url, &key.sign(&expired, false)?).await?;
        expect_refused(&fanout.ws_url, &key.sign(&early, false)?).await?;
    }
    // The default leeway (5 s) forgives a little clock skew.
    let lenient = Fanout::suite(&["--jwt-secret", SECRET]).await?;
    let skewed = json!({ "sub": "u1", "exp": now() - 1, "nbf": now() + 2 });
    expect_accepted(&lenient.ws_url, &token::mint(SECRET, &skewed)?).await?;
    Ok(())
}

#[tokio::test]
async fn a_token_expiring_while_connected_closes_4403_at_its_expiry() -> Result<()> {
    let fanout = suite(
        &[
            key_args(&RSA1),
            vec!["--jwt-leeway-secs".into(), "0".into()],
        ]
        .concat(),
    )
    .await?;
    let exp = now() + 2;
    let started = Instant::now();
    let mut c = expect_accepted(
        &fanout.ws_url,
        &RSA1.sign(&json!({ "sub": "u1", "exp": exp }), false)?,
    )
    .await?;
    c.subscribe("t", TICK, None).await?;
    let reason = c.expect_close_within(4403, Duration::from_secs(6)).await?;
    ensure!(reason == "Forbidden: token expired", "reason {reason:?}");
    ensure!(
        started.elapsed() >= Duration::from_millis(900),
        "closed after {:?}, before exp",
        started.elapsed()
    );
    Ok(())
}

#[tokio::test]
async fn wrong_issuer_or_audience_is_refused() -> Result<()> {
    let fanout = Fanout::suite(&[
        "--jwt-secret",
        SECRET,
        "--jwt-issuer",
        "https://idp.test",
        "--jwt-audience",
        "fanout",
    ])
    .await?;
    let ok = json!({ "sub": "u1", "iss": "https://idp.test", "aud": ["other", "fanout"] });
    expect_accepted(&fanout.ws_url, &token::mint(SECRET, &ok)?).await?;
    for claims in [
        json!({ "sub": "u1", "iss": "https://evil.test", "aud": "fanout" }),
        json!({ "sub": "u1", "aud": "fanout" }),
        json!({ "sub": "u1", "iss": "https://idp.test", "aud": "other" }),
        json!({ "sub": "u1", "iss": "https://idp.test" }),
    ] {
        expect_refused(&fanout.ws_url, &token::mint(SECRET, &claims)?).await?;
    }
    Ok(())
}

#[tokio::test]
async fn alg_none_and_forged_signatures_are_refused() -> Result<()> {
    let fanout =
        suite(&[key_args(&RSA1), vec!["--jwt-secret".into(), SECRET.into()]].concat()).await?;
    let claims = json!({ "sub": "admin", "roles": ["admin"], "exp": now() + 3600 });
    expect_refused(&fanout.ws_url, &keys::alg_none(&claims)).await?;
    // A valid RS256 token whose claims were swapped, keeping its signature.
    let real = RSA1.sign(&user(), false)?;
    expect_refused(&fanout.ws_url, &keys::with_forged_claims(&real, &claims)).await?;
    // A signature from another key pair.
    expect_refused(&fanout.ws_url, &RSA2.sign(&claims, false)?).await?;
    Ok(())
}

#[tokio::test]
async fn hs256_signed_with_the_rsa_public_key_is_refused() -> Result<()> {
    // Algorithm confusion: the attacker knows the public key and uses its PEM bytes as
    // an HMAC secret.
    let pem = RSA1.public_pem()?;
    let claims = json!({ "sub": "admin", "roles": ["admin"], "exp": now() + 3600 });
    let forged = keys::hs256_raw(pem.as_bytes(), &claims)?;
    let fanout = suite(&key_args(&RSA1)).await?;
    expect_refused(&fanout.ws_url, &forged).await?;
    let with_jwks = suite(&["--jwks-file".into(), keys::jwks_path()]).await?;
    expect_refused(&with_jwks.ws_url, &forged).await?;
    let mut header_kid = json!({ "kid": "rsa-2024" });
    header_kid["alg"] = json!("HS256");
    let forged_kid = {
        // Same forgery, naming the RSA key's kid.
        let body = keys::b64url(claims.to_string().as_bytes());
        let head = keys::b64url(header_kid.to_string().as_bytes());
        let mac = keys::hs256_raw(pem.as_bytes(), &claims)?;
        let sig = mac.rsplit('.').next().unwrap_or_default().to_owned();
        format!("{head}.{body}.{sig}")
    };
    expect_refused(&with_jwks.ws_url, &forged_kid).await?;
    Ok(())
}

#[tokio::test]
async fn jwks_keys_rotate_by_kid() -> Result<()> {
    let fanout = suite(&["--jwks-file".into(), keys::jwks_path()]).await?;
    for key in [RSA1, RSA2, EC1, EC2] {
        expect_accepted(&fanout.ws_url, &key.sign(&user(), true)?).await?;
    }
    expect_refused(
        &fanout.ws_url,
        &RSA1.sign_with_kid(&user(), Some("rsa-1999"))?,
    )
    .await?;
    // The right kid with another key's signature.
    expect_refused(
        &fanout.ws_url,
        &RSA2.sign_with_kid(&user(), Some("rsa-2024"))?,
    )
    .await?;
    Ok(())
}

#[tokio::test]
async fn jwks_file_is_reloaded_when_it_changes_and_on_sighup() -> Result<()> {
    let dir = KeyDir::new()?;
    let polled = dir.write_jwks("polled.json", &["rsa-2024"])?;
    let fanout = suite(&[
        "--jwks-file".into(),
        polled.clone(),
        "--key-reload-secs".into(),
        "1".into(),
    ])
    .await?;
    let new_key_token = RSA2.sign(&user(), true)?;
    expect_refused(&fanout.ws_url, &new_key_token).await?;
    dir.write_jwks("polled.json", &["rsa-2024", "rsa-2025"])?;
    eventually(
        Duration::from_secs(10),
        "the new kid is accepted",
        || async {
            Ok(
                GqlClient::connect_with_token(&fanout.ws_url, &new_key_token)
                    .await
                    .ok()
                    .map(|_| ()),
            )
        },
    )
    .await?;
    // Rotating the old key out.
    dir.write_jwks("polled.json", &["rsa-2025"])?;
    let old_key_token = RSA1.sign(&user(), true)?;
    eventually(
        Duration::from_secs(10),
        "the removed kid is refused",
        || async {
            Ok(
                GqlClient::connect_with_token(&fanout.ws_url, &old_key_token)
                    .await
                    .is_err()
                    .then_some(()),
            )
        },
    )
    .await?;

    // With change checks off, SIGHUP reloads.
    let hup = dir.write_jwks("hup.json", &["ec-2024"])?;
    let fanout = suite(&[
        "--jwks-file".into(),
        hup,
        "--key-reload-secs".into(),
        "0".into(),
    ])
    .await?;
    let ec2 = EC2.sign(&user(), true)?;
    expect_refused(&fanout.ws_url, &ec2).await?;
    dir.write_jwks("hup.json", &["ec-2024", "ec-2025"])?;
    let status = std::process::Command::new("kill")
        .args(["-s", "HUP", &fanout.pid().to_string()])
        .status()?;
    ensure!(status.success(), "kill -HUP failed: {status}");
    eventually(
        Duration::from_secs(10),
        "SIGHUP reloads the JWKS",
        || async {
            Ok(GqlClient::connect_with_token(&fanout.ws_url, &ec2)
                .await
                .ok()
                .map(|_| ()))
        },
    )
    .await?;
    Ok(())
}

/// Subscribes to `whoami` and returns what the resolver saw of the subscriber.
async fn whoami(fanout: &Fanout, c: &mut GqlClient, id: &str) -> Result<Value> {
    let mut p = Publisher::connect(&fanout.grpc_url).await?;
    p.publish("who.r", &json!({ "n": 1 })).await?;
    let payload = c.next_payload(id).await?;
    Ok(payload["data"]["whoami"].clone())
}

#[tokio::test]
async fn claim_paths_map_subject_tenant_roles_and_scopes() -> Result<()> {
    let fanout = Fanout::suite(&[
        "--jwt-secret",
        SECRET,
        "--claim-subject",
        "uid",
        "--claim-tenant",
        "https://example.com/claims.tenant",
        "--claim-roles",
        "realm_access.roles",
        "--claim-scopes",
        "scp",
    ])
    .await?;
    let claims = json!({
        "sub": "ignored",
        "uid": "user-9",
        "https://example.com/claims": { "tenant": "acme" },
        "realm_access": { "roles": ["admin", "viewer"] },
        "scp": ["tick:read", "a:b"],
    });
    let mut c = expect_accepted(&fanout.ws_url, &token::mint(SECRET, &claims)?).await?;
    c.subscribe("w", WHOAMI, None).await?;
    c.subscribe("a", ADMIN_ONLY, None).await?;
    c.subscribe("s", SCOPED, None).await?;
    // Both @auth fields were allowed (no error); give the server a moment to index them.
    c.expect_silence(Duration::from_millis(300)).await?;
    let who = whoami(&fanout, &mut c, "w").await?;
    ensure!(
        who == json!({
            "tenant": "acme",
            "subject": "user-9",
            "roles": ["admin", "viewer"],
            "scopes": ["a:b", "tick:read"],
        }),
        "resolver saw {who}"
    );
    Ok(())
}

#[tokio::test]
async fn refresh_by_ping_extends_the_connection_past_the_old_expiry() -> Result<()> {
    let fanout = Fanout::suite(&["--jwt-secret", SECRET, "--jwt-leeway-secs", "0"]).await?;
    let short = json!({ "sub": "u1", "tenant": "t1", "exp": now() + 2 });
    let mut c = expect_accepted(&fanout.ws_url, &token::mint(SECRET, &short)?).await?;
    c.subscribe("t", TICK, None).await?;
    let longer = json!({ "sub": "u1", "tenant": "t1", "exp": now() + 60 });
    c.send_json(&json!({ "type": "ping", "payload": { "token": token::mint(SECRET, &longer)? } }))
        .await?;
    let pong = c.recv().await?;
    ensure!(
        pong == json!({ "type": "pong", "payload": { "refreshed": true } }),
        "expected the refresh pong, got {pong}"
    );
    // Well past the first token's exp, the socket still delivers.
    c.expect_silence(Duration::from_secs(3)).await?;
    let mut p = Publisher::connect(&fanout.grpc_url).await?;
    p.publish("tick.a", &json!({ "n": 7 })).await?;
    let payload = c.next_payload("t").await?;
    ensure!(payload["data"]["tick"]["n"] == 7, "got {payload}");
    Ok(())
}

#[tokio::test]
async fn refresh_dropping_a_role_ends_only_the_affected_subscription() -> Result<()> {
    let fanout = Fanout::suite(&["--jwt-secret", SECRET]).await?;
    let admin = token::user("u1", "t1", &["admin"], &["tick:read"])?;
    let mut c = expect_accepted(&fanout.ws_url, &admin).await?;
    c.subscribe("a", ADMIN_ONLY, None).await?;
    c.subscribe("s", SCOPED, None).await?;
    c.subscribe("w", WHOAMI, None).await?;
    c.expect_silence(Duration::from_millis(300)).await?;

    let demoted = token::user("u1", "t1", &["viewer"], &["tick:read"])?;
    c.send_json(&json!({ "type": "ping", "payload": { "token": demoted } }))
        .await?;
    let errors = c.expect_error("a").await?;
    let message = errors[0]["message"].as_str().unwrap_or_default();
    ensure!(
        errors[0]["extensions"]["code"] == "FORBIDDEN" && message.contains("role one of [admin]"),
        "unexpected error {errors:?}"
    );
    let pong = c.recv().await?;
    ensure!(pong["type"] == "pong", "expected pong, got {pong}");

    let mut p = Publisher::connect(&fanout.grpc_url).await?;
    p.publish("admin.r", &json!({ "n": 1 })).await?;
    p.publish("scoped.r", &json!({ "n": 2 })).await?;
    let payload = c.next_payload("s").await?;
    ensure!(payload["data"]["scoped"]["n"] == 2, "got {payload}");
    // `w` moved to the new context's shape: its resolver sees the new roles.
    let who = whoami(&fanout, &mut c, "w").await?;
    ensure!(who["roles"] == json!(["viewer"]), "resolver saw {who}");
    c.expect_silence(Duration::from_millis(300)).await?;
    Ok(())
}

#[tokio::test]
async fn invalid_refresh_or_another_identity_closes_4403() -> Result<()> {
    let fanout = Fanout::suite(&["--jwt-secret", SECRET]).await?;
    let good = token::user("u1", "t1", &[], &[])?;
    let cases = [
        "not-a-jwt".to_owned(),
        token::mint("another-secret", &user())?,
        token::user("u2", "t1", &[], &[])?,
        token::user("u1", "t2", &[], &[])?,
        token::mint(
            SECRET,
            &json!({ "sub": "u1", "tenant": "t1", "exp": now() - 60 }),
        )?,
    ];
    for bad in cases {
        let mut c = expect_accepted(&fanout.ws_url, &good).await?;
        c.send_json(&json!({ "type": "ping", "payload": { "token": bad } }))
            .await?;
        let reason = c.expect_close(4403).await?;
        ensure!(reason == "Forbidden", "reason {reason:?}");
    }
    Ok(())
}

#[tokio::test]
async fn authorization_header_on_the_upgrade_request() -> Result<()> {
    let fanout = Fanout::suite(&["--jwt-secret", SECRET]).await?;
    let bearer = format!("Bearer {}", token::user("hdr-user", "t1", &[], &[])?);
    let mut c =
        GqlClient::connect_with_headers(&fanout.ws_url, &[("Authorization", &bearer)]).await?;
    c.init(None).await?;
    c.subscribe("w", WHOAMI, None).await?;
    c.expect_silence(Duration::from_millis(300)).await?;
    let who = whoami(&fanout, &mut c, "w").await?;
    ensure!(who["subject"] == "hdr-user", "resolver saw {who}");

    // The payload's token wins over the header's.
    let mut c =
        GqlClient::connect_with_headers(&fanout.ws_url, &[("Authorization", &bearer)]).await?;
    c.send_json(&json!({ "type": "connection_init", "payload": { "token": "bad" } }))
        .await?;
    c.expect_close(4403).await?;

    let mut c = GqlClient::connect_with_headers(
        &fanout.ws_url,
        &[("Authorization", "Bearer forged.token.here")],
    )
    .await?;
    c.send_json(&json!({ "type": "connection_init" })).await?;
    c.expect_close(4403).await?;
    Ok(())
}

#[tokio::test]
async fn payload_authorization_and_custom_token_field() -> Result<()> {
    let fanout = Fanout::suite(&["--jwt-secret", SECRET, "--token-field", "accessToken"]).await?;
    let good = token::user("u1", "t1", &[], &[])?;
    let mut c = GqlClient::connect(&fanout.ws_url).await?;
    c.init(Some(json!({ "accessToken": good }))).await?;
    let mut c = GqlClient::connect(&fanout.ws_url).await?;
    c.init(Some(json!({ "Authorization": format!("Bearer {good}") })))
        .await?;
    // The default field name is not read when another is configured.
    let mut c = GqlClient::connect(&fanout.ws_url).await?;
    c.send_json(&json!({ "type": "connection_init", "payload": { "token": good } }))
        .await?;
    c.expect_close(4403).await?;
    Ok(())
}

#[tokio::test]
async fn anonymous_access_only_when_configured() -> Result<()> {
    // No key at all: everyone is anonymous and tokens are ignored.
    let open = Fanout::suite(&[]).await?;
    expect_accepted(&open.ws_url, "whatever").await?;

    let optional = Fanout::suite(&["--jwt-secret", SECRET, "--allow-anonymous"]).await?;
    let mut c = GqlClient::connect_init(&optional.ws_url).await?;
    c.subscribe("a", ADMIN_ONLY, None).await?;
    let errors = c.expect_error("a").await?;
    ensure!(errors[0]["extensions"]["code"] == "FORBIDDEN", "{errors:?}");
    c.subscribe("t", TICK, None).await?;
    c.expect_silence(Duration::from_millis(200)).await?;
    // A token that is sent must still be valid.
    expect_refused(&optional.ws_url, &token::mint("another-secret", &user())?).await?;
    Ok(())
}

#[tokio::test]
async fn bad_key_configuration_exits_64_without_printing_secrets() -> Result<()> {
    let dir = KeyDir::new()?;
    let private = dir.write(
        "private.pem",
        &std::fs::read_to_string(fanout_tests::fixtures::fixture("keys/rsa1.key.pem"))?,
    )?;
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec!["--jwks-file".into(), "/nonexistent/jwks.json".into()],
            "/nonexistent/jwks.json",
        ),
        (vec!["--jwt-public-key".into(), private], "private key"),
        (vec!["--jwt-audience".into(), "x".into()], "need a key"),
        (
            vec![
                "--jwt-secret".into(),
                SECRET.into(),
                "--jwt-leeway-secs".into(),
                "3600".into(),
            ],
            "--jwt-leeway-secs",
        ),
    ];
    for (args, want) in cases {
        let mut full: Vec<String> = ["standalone", "--listen", "127.0.0.1:0"]
            .iter()
            .chain(&[
                "--grpc-listen",
                "127.0.0.1:0",
                "--admin-listen",
                "127.0.0.1:0",
            ])
            .map(|s| (*s).to_owned())
            .collect();
        full.extend(fanout_tests::fixtures::suite_args());
        full.extend(args.clone());
        let out = fanout_tests::cli::run(&full, Duration::from_secs(60)).await?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        if out.status.code() != Some(64) || !stderr.contains(want) {
            bail!(
                "{args:?}: expected exit 64 mentioning {want:?}\n{}",
                fanout_tests::cli::show(&out)
            );
        }
        ensure!(!stderr.contains("BEGIN"), "key material printed: {stderr}");
    }
    Ok(())
}
