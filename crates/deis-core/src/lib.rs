//! Domain rules shared by every component.
//!
//! Architecture invariant: no I/O and no knowledge of gRPC or SQL. Everything
//! here is a pure function over plain data, so the same rules hold for the
//! controller, the builder and the CLI, and are unit-tested in isolation.

pub mod accept;
pub mod cert;
pub mod config;
pub mod error;
pub mod names;
pub mod sshkey;
pub mod summary;
pub mod validate;

pub use config::{ConfigChanges, ConfigData};
pub use error::{Error, ErrorKind, Resource, Result};
