//! The Portcullis gateway: configuration, listeners, TLS, the proxy, the
//! admin endpoints and the demo upstream. The binary crate is glue around
//! [`serve`] and [`config::load`].

pub mod config;
pub mod tls;
