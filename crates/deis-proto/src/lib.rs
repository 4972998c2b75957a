//! The platform's protobuf contract, generated from `proto/` at build time.
//!
//! Architecture invariant: this crate has no logic. It holds the generated
//! messages and gRPC stubs, and the encoded descriptor set *with options
//! preserved* (`google.api.http` included) for gRPC reflection and the REST
//! gateway.

/// The encoded `FileDescriptorSet` of every `.proto` file, extension options kept.
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/deis.fds.bin"));

/// The descriptor pool over [`FILE_DESCRIPTOR_SET`], decoded once.
pub static DESCRIPTOR_POOL: std::sync::LazyLock<prost_reflect::DescriptorPool> =
    std::sync::LazyLock::new(|| {
        // The bytes were produced by protox from the same files at build time,
        // so decoding them cannot fail unless the build itself is broken.
        prost_reflect::DescriptorPool::decode(FILE_DESCRIPTOR_SET)
            .expect("descriptor set embedded at build time decodes")
    });

/// Generated Google API types (the HTTP rule annotations).
pub mod google {
    /// `google.api`.
    pub mod api {
        #![allow(clippy::all, missing_docs, unreachable_pub)]
        include!(concat!(env!("OUT_DIR"), "/google.api.rs"));
    }
}

/// Generated `deis.*` packages; module paths mirror the protobuf packages.
pub mod deis {
    /// The public API (`deis.v2`).
    pub mod v2 {
        #![allow(clippy::all, missing_docs, unreachable_pub)]
        include!(concat!(env!("OUT_DIR"), "/deis.v2.rs"));
    }

    /// The API between platform components (`deis.internal.v1`).
    pub mod internal {
        /// `deis.internal.v1`.
        pub mod v1 {
            #![allow(clippy::all, missing_docs, unreachable_pub)]
            include!(concat!(env!("OUT_DIR"), "/deis.internal.v1.rs"));
        }
    }

    /// The container registry's administration (`deis.registry.v1`).
    pub mod registry {
        /// `deis.registry.v1`.
        pub mod v1 {
            #![allow(clippy::all, missing_docs, unreachable_pub)]
            include!(concat!(env!("OUT_DIR"), "/deis.registry.v1.rs"));
        }
    }

    /// The logger's API for platform components (`deis.logger.v1`).
    pub mod logger {
        /// `deis.logger.v1`.
        pub mod v1 {
            #![allow(clippy::all, missing_docs, unreachable_pub)]
            include!(concat!(env!("OUT_DIR"), "/deis.logger.v1.rs"));
        }
    }
}

pub use deis::internal::v1 as internal;
pub use deis::logger::v1 as logger;
pub use deis::registry::v1 as registry;
pub use deis::v2;

pub use prost;
pub use prost_reflect;
pub use prost_types;
pub use tonic;
