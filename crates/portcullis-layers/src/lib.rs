//! Tower middleware for the production API security checklist.
//!
//! Each module is one control of the checklist (`C1` ... `C34`), usable on
//! its own in any tower/hyper/axum stack, and used by the Portcullis gateway
//! through the same builders. Modules:
//!
//! | module | controls | what |
//! |---|---|---|
//! | [`client`] | C3 | trusted-proxy client resolution |
//! | [`request_id`] | C30 | request ids |
//! | [`headers`] | C2 C5 C6 C7 | helmet headers, CSP, HSTS |
//! | [`path`] | C28 | path canonicalisation |
//! | [`pattern`] | C11 C21 | route path patterns (Express semantics) |
//! | [`cors`] | C8 | strict CORS |
//! | [`ratelimit`] | C11 C12 | rate limits (GCRA), memory store |
//! | [`framing`] | C28 | ambiguous framing refused |
//! | [`limit`] | C13 C14 | body limits, body read timeout |
//! | [`errors`] | C29 | upstream error pages replaced |
//! | [`forwarded`] | C3 | hop-by-hop and forwarding headers |
//! | [`auth`] | C22 C23 C26 C27 | bearer JWT, JWKS, identity headers, roles, ownership |
//! | [`route`] | C21 C27 C28 | the route table, deny by default |
//! | [`json`] | C17 C18 | strict, bounded JSON |
//! | [`input`] | C16 C17 C18 C19 C20 | input validation: JSON/query/form hardening, JSON Schema, injection detection |
//! | [`rejection`] | C19 C29 | the one error table |
//! | [`redact`] | C30 | secret redaction for logs |

#[cfg(feature = "auth")]
pub mod auth;
pub mod body;
pub mod client;
pub mod clock;
pub mod config_error;
#[cfg(feature = "cors")]
pub mod cors;
#[cfg(feature = "errors")]
pub mod errors;
pub mod forwarded;
#[cfg(feature = "framing")]
pub mod framing;
pub mod future;
#[cfg(feature = "headers")]
pub mod headers;
#[cfg(feature = "input")]
pub mod input;
pub mod json;
#[cfg(feature = "limit")]
pub mod limit;
#[cfg(feature = "path")]
pub mod path;
pub mod pattern;
#[cfg(feature = "ratelimit")]
pub mod ratelimit;
pub mod redact;
pub mod rejection;
pub mod request_id;
#[cfg(feature = "route")]
pub mod route;
#[cfg(test)]
mod test_util;

pub use body::{Body, BoxError};
pub use config_error::ConfigError;
