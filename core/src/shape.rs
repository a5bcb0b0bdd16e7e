//! Shapes (DESIGN §4): resolve once, deliver many.
//!
//! A shape is everything that makes two subscriptions receive byte-identical payloads:
//! the normalized document, the variable values and the part of the security context
//! that the field's resolver and filter may observe. Its id is a hash of these, so two
//! subscriptions share a shape only if all of it is equal.

use std::fmt;
use std::sync::Arc;

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::graphql::{GraphQLError, Prepared, Schema, SubscribeRequest, prepare};
use crate::security::SecurityContext;

/// 128-bit shape id.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ShapeId(pub [u8; 16]);

impl ShapeId {
    /// Reads an id from its 16 bytes, as carried in protobuf messages.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        <[u8; 16]>::try_from(bytes).ok().map(Self)
    }
}

impl fmt::Debug for ShapeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ShapeId({self})")
    }
}

impl fmt::Display for ShapeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// A shape: one prepared subscription as seen from a given security context.
#[derive(Debug, Clone)]
pub struct Shape {
    /// Hash of everything below.
    pub id: ShapeId,
    /// The validated subscription.
    pub prepared: Prepared,
    /// What the resolver and filter may observe of the subscriber.
    pub security: SecurityContext,
    /// The request as the client sent it, to rebuild the shape in another process.
    pub request: SubscribeRequest,
}

impl Shape {
    /// Builds the shape of `prepared` for a subscriber with `security`.
    pub fn new(prepared: Prepared, request: SubscribeRequest, security: &SecurityContext) -> Self {
        let security = security.visible_to(prepared.field.user_independent);
        let id = shape_id(&prepared, &security);
        Self {
            id,
            prepared,
            security,
            request,
        }
    }

    /// Field name of the subscription root field.
    pub fn field(&self) -> &str {
        &self.prepared.field.name
    }

    /// Channel the shape listens on.
    pub fn channel(&self) -> &str {
        &self.prepared.channel
    }

    /// Wire form of the shape, for other processes.
    pub fn spec(&self) -> fanout_proto::v1::ShapeSpec {
        fanout_proto::v1::ShapeSpec {
            id: bytes::Bytes::copy_from_slice(&self.id.0),
            query: self.request.query.clone(),
            operation_name: self.request.operation_name.clone().unwrap_or_default(),
            variables: serde_json::to_vec(&self.request.variables.clone().unwrap_or_default())
                .unwrap_or_default()
                .into(),
            security: serde_json::to_vec(&self.security)
                .unwrap_or_default()
                .into(),
        }
    }

    /// Rebuilds a shape from its wire form, validating it against `schema` again.
    pub fn from_spec(
        schema: &Schema,
        spec: &fanout_proto::v1::ShapeSpec,
    ) -> Result<Arc<Self>, Vec<GraphQLError>> {
        let variables: Option<Map<String, Value>> = serde_json::from_slice(&spec.variables)
            .map_err(|e| vec![GraphQLError::new(format!("bad shape variables: {e}"))])?;
        let security: SecurityContext = serde_json::from_slice(&spec.security)
            .map_err(|e| vec![GraphQLError::new(format!("bad shape security: {e}"))])?;
        let request = SubscribeRequest {
            query: spec.query.clone(),
            operation_name: (!spec.operation_name.is_empty()).then(|| spec.operation_name.clone()),
            variables,
            extensions: None,
        };
        let prepared = prepare(schema, &request)?;
        Ok(Arc::new(Self::new(prepared, request, &security)))
    }
}

/// Hash of the shape-defining parts of a subscription.
fn shape_id(prepared: &Prepared, security: &SecurityContext) -> ShapeId {
    let mut h = Sha256::new();
    h.update(b"fanout-shape-v1\0");
    h.update(prepared.canonical.as_bytes());
    h.update(b"\0");
    h.update(serde_json::to_vec(&prepared.variables).unwrap_or_default());
    h.update(b"\0");
    h.update(serde_json::to_vec(security).unwrap_or_default());
    let digest = h.finalize();
    let mut id = [0u8; 16];
    id.copy_from_slice(&digest[..16]);
    ShapeId(id)
}
