//! Client authentication settings: the `--jwt-*`, `--claim-*`, `--allow-anonymous`
//! flags and the `auth:` section of the YAML file (same names in snake_case).
//!
//! Keys come from `--jwt-secret` (HS256, also `FANOUT_JWT_SECRET`), a secret file, PEM
//! public keys (files or `FANOUT_JWT_PUBLIC_KEY_PEM`) and a JWKS file. With none of
//! them, authentication is off and every connection is anonymous.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use fanout_core::security::{
    ClaimPaths, DEFAULT_LEEWAY, DEFAULT_TOKEN_FIELD, JwtVerifier, KeySource, VerifierConfig,
};
use serde::Deserialize;

/// Largest accepted `--jwt-leeway-secs`.
const MAX_LEEWAY_SECS: u64 = 300;
/// Default interval of key-file change checks.
const DEFAULT_KEY_RELOAD_SECS: u64 = 30;

/// Authentication flags.
#[derive(Debug, Default, Args)]
pub struct AuthArgs {
    /// File holding an HS256 secret (surrounding whitespace ignored).
    #[arg(long, env = "FANOUT_JWT_SECRET_FILE", value_name = "FILE")]
    pub jwt_secret_file: Option<PathBuf>,
    /// PEM file of RSA (RS256) or EC P-256 (ES256) public keys; may hold several keys,
    /// the flag may be repeated (or comma-separated in the env variable).
    #[arg(
        long,
        env = "FANOUT_JWT_PUBLIC_KEY",
        value_name = "FILE",
        value_delimiter = ','
    )]
    pub jwt_public_key: Vec<PathBuf>,
    /// PEM text of RSA or EC P-256 public keys, usually given through the environment.
    #[arg(
        long,
        env = "FANOUT_JWT_PUBLIC_KEY_PEM",
        value_name = "PEM",
        hide_env_values = true
    )]
    pub jwt_public_key_pem: Option<String>,
    /// JSON Web Key Set file (RS256, ES256 and HS256 keys, selected by the token's
    /// `kid`); re-read when it changes and on SIGHUP.
    #[arg(long, env = "FANOUT_JWKS_FILE", value_name = "FILE")]
    pub jwks_file: Option<PathBuf>,
    /// Seconds between checks of key files for changes; 0 turns the checks off (SIGHUP
    /// still reloads) [default: 30].
    #[arg(long, env = "FANOUT_KEY_RELOAD_SECS", value_name = "SECS")]
    pub key_reload_secs: Option<u64>,
    /// Accepted `iss` value; repeatable. When given, tokens must carry one of them.
    #[arg(
        long,
        env = "FANOUT_JWT_ISSUER",
        value_name = "ISS",
        value_delimiter = ','
    )]
    pub jwt_issuer: Vec<String>,
    /// Accepted `aud` value; repeatable. When given, tokens must name one of them.
    #[arg(
        long,
        env = "FANOUT_JWT_AUDIENCE",
        value_name = "AUD",
        value_delimiter = ','
    )]
    pub jwt_audience: Vec<String>,
    /// Clock-skew allowance for `exp` and `nbf`, at most 300 [default: 5].
    #[arg(long, env = "FANOUT_JWT_LEEWAY_SECS", value_name = "SECS")]
    pub jwt_leeway_secs: Option<u64>,
    /// Refuse tokens without `exp` (by default such tokens never expire).
    #[arg(long, env = "FANOUT_JWT_REQUIRE_EXP")]
    pub jwt_require_exp: bool,
    /// With keys configured, accept connections without a token as anonymous (a token
    /// that is sent must still be valid). Without keys everyone is anonymous anyway.
    #[arg(long, env = "FANOUT_ALLOW_ANONYMOUS")]
    pub allow_anonymous: bool,
    /// Field of the `connection_init` (and refresh `ping`) payload holding the token
    /// [default: token].
    #[arg(long, env = "FANOUT_TOKEN_FIELD", value_name = "NAME")]
    pub token_field: Option<String>,
    /// Dotted claim path of the subject [default: sub].
    #[arg(long, env = "FANOUT_CLAIM_SUBJECT", value_name = "PATH")]
    pub claim_subject: Option<String>,
    /// Dotted claim path of the tenant [default: tenant].
    #[arg(long, env = "FANOUT_CLAIM_TENANT", value_name = "PATH")]
    pub claim_tenant: Option<String>,
    /// Dotted claim path of the roles (array or string) [default: roles].
    #[arg(long, env = "FANOUT_CLAIM_ROLES", value_name = "PATH")]
    pub claim_roles: Option<String>,
    /// Dotted claim path of the scopes (space-separated string or array); repeatable,
    /// the first present wins [default: scope, scopes].
    #[arg(
        long,
        env = "FANOUT_CLAIM_SCOPES",
        value_name = "PATH",
        value_delimiter = ','
    )]
    pub claim_scopes: Vec<String>,
}

/// The `auth:` section of the YAML file: the flags above in snake_case.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthFile {
    jwt_secret_file: Option<PathBuf>,
    #[serde(default)]
    jwt_public_key: Vec<PathBuf>,
    jwt_public_key_pem: Option<String>,
    jwks_file: Option<PathBuf>,
    key_reload_secs: Option<u64>,
    #[serde(default)]
    jwt_issuer: Vec<String>,
    #[serde(default)]
    jwt_audience: Vec<String>,
    jwt_leeway_secs: Option<u64>,
    jwt_require_exp: Option<bool>,
    allow_anonymous: Option<bool>,
    token_field: Option<String>,
    claim_subject: Option<String>,
    claim_tenant: Option<String>,
    claim_roles: Option<String>,
    #[serde(default)]
    claim_scopes: Vec<String>,
}

/// Resolved authentication settings.
#[derive(Debug)]
pub struct Auth {
    /// The verifier, keys loaded.
    pub verifier: JwtVerifier,
    /// How often key files are checked for changes (`None`: never, or no key files).
    pub reload_every: Option<Duration>,
}

/// A list flag wins over the file's list when given.
fn list<T: Clone>(flag: &[T], file: &[T]) -> Vec<T> {
    if flag.is_empty() {
        file.to_vec()
    } else {
        flag.to_vec()
    }
}

/// Merges flags/env, the `auth:` section and `--jwt-secret`, loads the keys and
/// returns every problem found.
pub fn resolve(
    (args, file): &(AuthArgs, AuthFile),
    jwt_secret: Option<&str>,
) -> Result<Auth, Vec<String>> {
    let mut problems = Vec::new();
    let mut keys = Vec::new();
    if let Some(secret) = jwt_secret {
        keys.push(KeySource::Secret(secret.as_bytes().to_vec()));
    }
    if let Some(path) = args
        .jwt_secret_file
        .clone()
        .or(file.jwt_secret_file.clone())
    {
        keys.push(KeySource::SecretFile(path));
    }
    for path in list(&args.jwt_public_key, &file.jwt_public_key) {
        keys.push(KeySource::PemFile(path));
    }
    if let Some(pem) = args
        .jwt_public_key_pem
        .clone()
        .or(file.jwt_public_key_pem.clone())
    {
        keys.push(KeySource::Pem(pem));
    }
    if let Some(path) = args.jwks_file.clone().or(file.jwks_file.clone()) {
        keys.push(KeySource::JwksFile(path));
    }

    let leeway = args
        .jwt_leeway_secs
        .or(file.jwt_leeway_secs)
        .map_or(DEFAULT_LEEWAY, Duration::from_secs);
    if leeway.as_secs() > MAX_LEEWAY_SECS {
        problems.push(format!(
            "--jwt-leeway-secs must be at most {MAX_LEEWAY_SECS}"
        ));
    }
    let non_empty =
        |flag: &str, value: Option<String>, default: &str, problems: &mut Vec<String>| {
            let value = value.unwrap_or_else(|| default.to_owned());
            if value.trim().is_empty() {
                problems.push(format!("--{flag} is empty"));
            }
            value
        };
    let defaults = ClaimPaths::default();
    let claims = ClaimPaths {
        subject: non_empty(
            "claim-subject",
            args.claim_subject.clone().or(file.claim_subject.clone()),
            &defaults.subject,
            &mut problems,
        ),
        tenant: non_empty(
            "claim-tenant",
            args.claim_tenant.clone().or(file.claim_tenant.clone()),
            &defaults.tenant,
            &mut problems,
        ),
        roles: non_empty(
            "claim-roles",
            args.claim_roles.clone().or(file.claim_roles.clone()),
            &defaults.roles,
            &mut problems,
        ),
        scopes: {
            let scopes = list(&args.claim_scopes, &file.claim_scopes);
            if scopes.iter().any(|s| s.trim().is_empty()) {
                problems.push("--claim-scopes has an empty path".into());
            }
            if scopes.is_empty() {
                defaults.scopes
            } else {
                scopes
            }
        },
    };
    let token_field = non_empty(
        "token-field",
        args.token_field.clone().or(file.token_field.clone()),
        DEFAULT_TOKEN_FIELD,
        &mut problems,
    );
    let issuers = list(&args.jwt_issuer, &file.jwt_issuer);
    let audiences = list(&args.jwt_audience, &file.jwt_audience);
    let require_exp = args.jwt_require_exp || file.jwt_require_exp.unwrap_or(false);
    if keys.is_empty() && (!issuers.is_empty() || !audiences.is_empty() || require_exp) {
        problems.push(
            "--jwt-issuer, --jwt-audience and --jwt-require-exp need a key (--jwt-secret, \
             --jwt-secret-file, --jwt-public-key, --jwt-public-key-pem or --jwks-file)"
                .into(),
        );
    }
    let reload_secs = args
        .key_reload_secs
        .or(file.key_reload_secs)
        .unwrap_or(DEFAULT_KEY_RELOAD_SECS);
    if !problems.is_empty() {
        return Err(problems);
    }
    let verifier = JwtVerifier::new(VerifierConfig {
        keys,
        issuers,
        audiences,
        leeway,
        require_exp,
        allow_anonymous: args.allow_anonymous || file.allow_anonymous.unwrap_or(false),
        claims,
        token_field,
    })
    .map_err(|e| vec![format!("JWT keys: {e}")])?;
    let reload_every =
        (reload_secs > 0 && verifier.has_key_files()).then(|| Duration::from_secs(reload_secs));
    Ok(Auth {
        verifier,
        reload_every,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys_dir() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/keys")
    }

    #[test]
    fn no_keys_means_anonymous() {
        let auth = resolve(&(AuthArgs::default(), AuthFile::default()), None).expect("ok");
        assert!(!auth.verifier.is_configured());
        assert!(auth.reload_every.is_none());
    }

    #[test]
    fn keys_from_every_source_and_reload_only_for_files() {
        let args = AuthArgs {
            jwt_public_key: vec![keys_dir().join("rsa1.pub.pem")],
            ..AuthArgs::default()
        };
        let file: AuthFile = serde_yaml::from_str(&format!(
            "jwks_file: {}\njwt_issuer: [a, b]\nclaim_scopes: [scp]\nallow_anonymous: true\n",
            keys_dir().join("jwks.json").display()
        ))
        .expect("yaml");
        let auth = resolve(&(args, file), Some("s3cret")).expect("ok");
        assert_eq!(auth.verifier.key_count(), 1 + 1 + 4);
        assert!(!auth.verifier.requires_token());
        assert_eq!(auth.verifier.config().issuers, ["a", "b"]);
        assert_eq!(auth.verifier.config().claims.scopes, ["scp"]);
        assert_eq!(auth.reload_every, Some(Duration::from_secs(30)));

        let inline = resolve(&(AuthArgs::default(), AuthFile::default()), Some("s")).expect("ok");
        assert!(inline.verifier.requires_token());
        assert!(inline.reload_every.is_none());
    }

    #[test]
    fn every_problem_is_reported() {
        let args = AuthArgs {
            jwt_leeway_secs: Some(3600),
            token_field: Some(String::new()),
            jwt_audience: vec!["x".into()],
            ..AuthArgs::default()
        };
        let problems = resolve(&(args, AuthFile::default()), None).expect_err("bad");
        assert_eq!(problems.len(), 3, "{problems:?}");
        let args = AuthArgs {
            jwks_file: Some("/nonexistent/jwks.json".into()),
            ..AuthArgs::default()
        };
        let problems = resolve(&(args, AuthFile::default()), None).expect_err("missing");
        assert!(
            problems[0].contains("/nonexistent/jwks.json"),
            "{problems:?}"
        );
        assert!(serde_yaml::from_str::<AuthFile>("jwt_secrte_file: x").is_err());
    }
}
