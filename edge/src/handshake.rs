//! The server side of the WebSocket opening handshake (RFC 6455 §4.2) over HTTP/1.1.
//!
//! Done here rather than by axum's `WebSocketUpgrade` so that the connection's writer
//! can own the upgraded socket's write half (see [`crate::socket`]).

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Version, header};
use axum::response::{IntoResponse, Response};

/// Why an upgrade request was refused; answered with a 4xx before upgrading.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HandshakeError {
    /// Only `GET` opens a WebSocket.
    #[error("a WebSocket upgrade must be a GET request")]
    MethodNotGet,
    /// WebSocket upgrades exist in HTTP/1.1 only (this server does not speak RFC 8441).
    #[error("a WebSocket upgrade needs HTTP/1.1")]
    NotHttp11,
    /// `Connection` lacks the `upgrade` token.
    #[error("the `Connection` header must include `upgrade`")]
    ConnectionHeader,
    /// `Upgrade` is not `websocket`.
    #[error("the `Upgrade` header must be `websocket`")]
    UpgradeHeader,
    /// `Sec-WebSocket-Version` is not 13.
    #[error("the `Sec-WebSocket-Version` header must be 13")]
    VersionHeader,
    /// No `Sec-WebSocket-Key`.
    #[error("the `Sec-WebSocket-Key` header is missing")]
    KeyMissing,
    /// The HTTP connection cannot be taken over (not an upgradable connection).
    #[error("this connection cannot be upgraded")]
    NotUpgradable,
}

impl IntoResponse for HandshakeError {
    fn into_response(self) -> Response {
        let status = match self {
            Self::MethodNotGet => StatusCode::METHOD_NOT_ALLOWED,
            Self::NotHttp11 | Self::NotUpgradable => StatusCode::UPGRADE_REQUIRED,
            Self::VersionHeader => {
                // RFC 6455 §4.4: tell the client which version is spoken.
                return (
                    StatusCode::BAD_REQUEST,
                    [(header::SEC_WEBSOCKET_VERSION, "13")],
                    self.to_string(),
                )
                    .into_response();
            }
            _ => StatusCode::BAD_REQUEST,
        };
        (status, self.to_string()).into_response()
    }
}

/// A valid upgrade request.
#[derive(Debug)]
pub struct Handshake {
    key: HeaderValue,
    /// The subprotocol chosen among those the client offered, if any.
    protocol: Option<&'static str>,
}

impl Handshake {
    /// Checks an upgrade request; `protocol` is the one subprotocol this server speaks.
    pub fn check(
        method: &Method,
        version: Version,
        headers: &HeaderMap,
        protocol: &'static str,
    ) -> Result<Self, HandshakeError> {
        if method != Method::GET {
            return Err(HandshakeError::MethodNotGet);
        }
        if version != Version::HTTP_11 {
            return Err(HandshakeError::NotHttp11);
        }
        if !has_token(headers, header::CONNECTION, "upgrade") {
            return Err(HandshakeError::ConnectionHeader);
        }
        if !has_token(headers, header::UPGRADE, "websocket") {
            return Err(HandshakeError::UpgradeHeader);
        }
        if headers
            .get(header::SEC_WEBSOCKET_VERSION)
            .is_none_or(|v| v.as_bytes() != b"13")
        {
            return Err(HandshakeError::VersionHeader);
        }
        let key = headers
            .get(header::SEC_WEBSOCKET_KEY)
            .ok_or(HandshakeError::KeyMissing)?
            .clone();
        let offered = has_token(headers, header::SEC_WEBSOCKET_PROTOCOL, protocol);
        Ok(Self {
            key,
            protocol: offered.then_some(protocol),
        })
    }

    /// Whether the client offered the server's subprotocol.
    pub fn protocol_accepted(&self) -> bool {
        self.protocol.is_some()
    }

    /// The `101 Switching Protocols` answer.
    pub fn accept(&self) -> Response {
        let accept = tungstenite::handshake::derive_accept_key(self.key.as_bytes());
        let mut response = Response::new(Body::empty());
        *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        let headers = response.headers_mut();
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        if let Ok(accept) = HeaderValue::from_str(&accept) {
            headers.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
        }
        if let Some(protocol) = self.protocol {
            headers.insert(
                header::SEC_WEBSOCKET_PROTOCOL,
                HeaderValue::from_static(protocol),
            );
        }
        response
    }
}

/// Whether any `name` header holds `token` in its comma-separated list (ASCII case
/// ignored).
fn has_token(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROTOCOL: &str = "graphql-transport-ws";

    fn request(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.append(*name, HeaderValue::from_static(value));
        }
        headers
    }

    fn valid() -> Vec<(&'static str, &'static str)> {
        vec![
            ("connection", "keep-alive, Upgrade"),
            ("upgrade", "WebSocket"),
            ("sec-websocket-version", "13"),
            ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ]
    }

    fn check(pairs: &[(&'static str, &'static str)]) -> Result<Handshake, HandshakeError> {
        Handshake::check(&Method::GET, Version::HTTP_11, &request(pairs), PROTOCOL)
    }

    #[test]
    fn accept_key_and_protocol_follow_the_rfc() {
        let mut pairs = valid();
        pairs.push(("sec-websocket-protocol", "other, graphql-transport-ws"));
        let handshake = check(&pairs).expect("valid");
        assert!(handshake.protocol_accepted());
        let response = handshake.accept();
        assert_eq!(response.status(), StatusCode::SWITCHING_PROTOCOLS);
        // The example of RFC 6455 §1.3.
        assert_eq!(
            response.headers()[header::SEC_WEBSOCKET_ACCEPT],
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
        assert_eq!(response.headers()[header::SEC_WEBSOCKET_PROTOCOL], PROTOCOL);
    }

    #[test]
    fn no_protocol_offered_is_upgraded_without_one() {
        let handshake = check(&valid()).expect("valid");
        assert!(!handshake.protocol_accepted());
        let response = handshake.accept();
        assert!(
            !response
                .headers()
                .contains_key(header::SEC_WEBSOCKET_PROTOCOL)
        );
    }

    #[test]
    fn each_missing_piece_is_refused_with_its_reason() {
        let without = |name: &str| -> Vec<(&'static str, &'static str)> {
            valid().into_iter().filter(|(n, _)| *n != name).collect()
        };
        let missing = [
            ("connection", HandshakeError::ConnectionHeader),
            ("upgrade", HandshakeError::UpgradeHeader),
            ("sec-websocket-version", HandshakeError::VersionHeader),
            ("sec-websocket-key", HandshakeError::KeyMissing),
        ];
        for (name, error) in missing {
            assert_eq!(check(&without(name)).err(), Some(error), "without {name}");
        }
        let mut old = without("sec-websocket-version");
        old.push(("sec-websocket-version", "8"));
        assert_eq!(check(&old).err(), Some(HandshakeError::VersionHeader));
        let post = Handshake::check(
            &Method::POST,
            Version::HTTP_11,
            &request(&valid()),
            PROTOCOL,
        );
        assert_eq!(post.err(), Some(HandshakeError::MethodNotGet));
        let h10 = Handshake::check(&Method::GET, Version::HTTP_10, &request(&valid()), PROTOCOL);
        assert_eq!(h10.err(), Some(HandshakeError::NotHttp11));
        let refused = HandshakeError::VersionHeader.into_response();
        assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
        assert_eq!(refused.headers()[header::SEC_WEBSOCKET_VERSION], "13");
    }
}
