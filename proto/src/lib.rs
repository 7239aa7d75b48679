//! motcua's contracts (protobuf package `motcua.v1`): the gRPC services counter software calls
//! and the `DossierEvent` that the store records and Kafka carries.

/// Generated code for `motcua.v1`.
pub mod v1 {
    #![allow(missing_docs, unused_qualifications, clippy::all, clippy::pedantic)]
    tonic::include_proto!("motcua.v1");
}

/// The encoded file descriptor set of every motcua proto, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("motcua_descriptor");

pub use prost_types::Timestamp;
