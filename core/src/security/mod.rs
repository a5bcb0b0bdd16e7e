//! Client authentication: who a connection is.
//!
//! A client presents a JWT in `connection_init.payload` (field `token` by default, or
//! `Authorization: "Bearer ..."`), or in the upgrade request's `Authorization` header.
//! [`JwtVerifier`] checks it against configured keys (HS256 secrets, RS256 and ES256
//! public keys from PEM or a JWKS, each bound to its algorithm, selected by `kid`) and
//! maps its claims to a [`SecurityContext`] through configurable [`ClaimPaths`].
//! With no key configured, every connection is anonymous.
//!
//! - [`context`]: [`SecurityContext`], what resolvers, filters and `@auth` see.
//! - [`claims`]: [`ClaimPaths`], dotted paths to subject, tenant, roles and scopes.
//! - [`keys`]: key sources ([`KeySource`]) and the algorithm-bound [`KeySet`].
//! - [`jwt`]: [`JwtVerifier`], [`VerifierConfig`] and [`AuthError`].
//! - [`token`]: finding the token in a payload or an `Authorization` header.

pub mod claims;
pub mod context;
pub mod jwt;
pub mod keys;
pub mod token;

#[cfg(test)]
pub(crate) mod test_keys;

pub use claims::ClaimPaths;
pub use context::SecurityContext;
pub use jwt::{AuthError, DEFAULT_LEEWAY, JwtVerifier, Verified, VerifierConfig};
pub use keys::{KeyError, KeySet, KeySource};
pub use token::{DEFAULT_TOKEN_FIELD, bearer, token_from_init_payload, token_from_payload};
