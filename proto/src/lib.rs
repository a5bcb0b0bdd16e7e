//! Protobuf contracts of Fanout.
//!
//! - `fanout.v1.Publisher` (`proto/fanout/v1/publish.proto`): the public publish API.
//! - `fanout.v1` internal messages (`proto/fanout/v1/internal.proto`): what roles send
//!   each other over the bus (events, resolve tasks, deliveries).
//!
//! Nothing but generated code lives here.

/// Generated `fanout.v1` types, clients and servers.
#[allow(clippy::all, clippy::pedantic, missing_docs)]
pub mod v1 {
    tonic::include_proto!("fanout.v1");

    /// Encoded `FileDescriptorSet` of `fanout.v1`, for gRPC server reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        tonic::include_file_descriptor_set!("fanout_v1_descriptor");
}
