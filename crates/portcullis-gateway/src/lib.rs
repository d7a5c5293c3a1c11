//! The Portcullis gateway: configuration, listeners, TLS, the proxy, the
//! admin endpoints and the demo upstream. The binary crate is glue around
//! [`server::start`] and [`config::load`].

pub mod access_log;
pub mod acme;
pub mod config;
pub mod demo;
pub mod framing;
pub mod identity;
pub mod jwks;
pub mod logging;
pub mod metrics;
pub mod proxy;
mod readiness;
pub mod redis_store;
pub mod server;
pub mod stack;
pub mod tls;
mod upstream_pool;
