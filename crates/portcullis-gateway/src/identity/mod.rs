//! The built-in identity provider (C24): users, argon2id passwords,
//! short-lived access tokens signed with a local key, rotating refresh
//! tokens with reuse detection.

pub mod keys;
pub mod password;
pub mod service;
pub mod sessions;
pub mod store;
