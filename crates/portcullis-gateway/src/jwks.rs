//! Fetching the identity provider's JWK set over HTTPS (or HTTP to a
//! loopback address): a GET with a timeout, 200 only, no redirects, the body
//! capped, `Cache-Control: max-age` passed on to the cache.

use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode, Uri, header};
use http_body_util::{BodyExt, Empty, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use portcullis_layers::auth::{Fetch, FetchFuture, Fetched};

/// The largest JWK set accepted.
const MAX_BODY: usize = 512 * 1024;

/// A [`Fetch`] over HTTP(S).
pub struct HttpFetch {
    client: Client<HttpsConnector<HttpConnector>, Empty<Bytes>>,
    url: Uri,
    timeout: Duration,
}

impl HttpFetch {
    /// For this URL (validated by the config: https, or http to loopback).
    pub fn new(url: Uri, timeout: Duration) -> HttpFetch {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(timeout));
        let provider = rustls::crypto::aws_lc_rs::default_provider();
        let builder = hyper_rustls::HttpsConnectorBuilder::new();
        let connector = match builder.with_provider_and_webpki_roots(provider) {
            Ok(b) => b.https_or_http().enable_http1().wrap_connector(http),
            // The aws-lc provider supports the default protocol versions;
            // should that ever change, fall back to rustls' process default.
            Err(_) => hyper_rustls::HttpsConnectorBuilder::new()
                .with_webpki_roots()
                .https_or_http()
                .enable_http1()
                .wrap_connector(http),
        };
        let client = Client::builder(TokioExecutor::new()).build(connector);
        HttpFetch { client, url, timeout }
    }
}

fn max_age(h: &http::HeaderMap) -> Option<Duration> {
    let cc = h.get(header::CACHE_CONTROL)?.to_str().ok()?;
    cc.split(',').find_map(|d| {
        let (k, v) = d.trim().split_once('=')?;
        k.eq_ignore_ascii_case("max-age").then(|| v.trim().parse::<u64>().ok().map(Duration::from_secs))?
    })
}

impl Fetch for HttpFetch {
    fn target(&self) -> String {
        // The query may carry a key: scheme, authority and path only.
        let u = &self.url;
        format!(
            "{}://{}{}",
            u.scheme_str().unwrap_or("http"),
            u.authority().map_or("", |a| a.as_str()),
            u.path()
        )
    }

    fn fetch(&self) -> FetchFuture<'_> {
        Box::pin(async move {
            let req = Request::get(self.url.clone())
                .header(header::ACCEPT, "application/jwk-set+json, application/json")
                .header(header::USER_AGENT, concat!("portcullis/", env!("CARGO_PKG_VERSION")))
                .body(Empty::new())
                .map_err(|_| "bad JWKS request".to_owned())?;
            let work = async {
                let res = self.client.request(req).await.map_err(|e| {
                    if e.is_connect() { "connection failed".to_owned() } else { "request failed".to_owned() }
                })?;
                if res.status() != StatusCode::OK {
                    return Err(format!("status {}", res.status().as_u16()));
                }
                let max_age = max_age(res.headers());
                #[allow(clippy::disallowed_methods)] // bounded by Limited
                let body = Limited::new(res.into_body(), MAX_BODY)
                    .collect()
                    .await
                    .map_err(|_| format!("body unreadable or over {MAX_BODY} bytes"))?
                    .to_bytes();
                Ok(Fetched { body: body.to_vec(), max_age })
            };
            tokio::time::timeout(self.timeout, work).await.map_err(|_| "timed out".to_owned())?
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_control_max_age() {
        let mut h = http::HeaderMap::new();
        assert_eq!(max_age(&h), None);
        h.insert(header::CACHE_CONTROL, "public, max-age=600, must-revalidate".parse().unwrap());
        assert_eq!(max_age(&h), Some(Duration::from_secs(600)));
        h.insert(header::CACHE_CONTROL, "no-store".parse().unwrap());
        assert_eq!(max_age(&h), None);
        h.insert(header::CACHE_CONTROL, "max-age=abc".parse().unwrap());
        assert_eq!(max_age(&h), None);
    }

    // Issue 17 item 7: fetch failures name the JWKS target, never its query.
    #[test]
    fn the_logged_target_has_no_query() {
        let f = HttpFetch::new(
            "https://idp.test:8443/keys.json?api_key=s3cret".parse().unwrap(),
            Duration::from_secs(1),
        );
        assert_eq!(f.target(), "https://idp.test:8443/keys.json");
    }
}
