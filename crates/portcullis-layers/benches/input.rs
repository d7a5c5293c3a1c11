//! Validation cost per request (C16-C19): a 1 KB JSON body through the
//! input layer, with the always-on checks only and with a typical route
//! schema, plus the pieces (strict parse, schema check) on their own.
//!
//!     cargo bench -p portcullis-layers --bench input
//!
//! Prints microseconds per request on one core (a current-thread runtime,
//! no sockets: the layer's own cost, including reading the body).

#![allow(clippy::unwrap_used, missing_docs, clippy::disallowed_methods)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use portcullis_layers::input::{Dialect, InputLayer, InputPolicy, Schema, UnknownFields};
use portcullis_layers::json::{JsonLimits, parse_strict};
use serde_json::json;
use tower::{Layer, Service, ServiceExt, service_fn};

fn schema() -> serde_json::Value {
    json!({
        "type": "object",
        "required": ["email", "name", "address"],
        "properties": {
            "email": {"type": "string", "format": "email", "maxLength": 254},
            "name": {"type": "string", "minLength": 1, "maxLength": 100},
            "age": {"type": "integer", "minimum": 0, "maximum": 150},
            "newsletter": {"type": "boolean"},
            "role": {"type": "string", "enum": ["user", "editor"]},
            "tags": {"type": "array", "maxItems": 20, "items": {"type": "string", "maxLength": 32}},
            "address": {
                "type": "object",
                "required": ["street", "city", "zip"],
                "properties": {
                    "street": {"type": "string", "maxLength": 200},
                    "city": {"type": "string", "maxLength": 100},
                    "zip": {"type": "string", "pattern": "^[0-9]{5}$"},
                    "country": {"type": "string", "minLength": 2, "maxLength": 2}
                }
            },
            "bio": {"type": "string", "maxLength": 2000}
        }
    })
}

/// A body of about 1 KB that satisfies `schema()`.
fn body() -> Bytes {
    let v = json!({
        "email": "ada.lovelace@example.com",
        "name": "Ada Lovelace",
        "age": 36,
        "newsletter": true,
        "role": "editor",
        "tags": ["math", "engines", "poetry", "notes", "analysis", "history"],
        "address": {"street": "12 St James's Square", "city": "London", "zip": "12345", "country": "GB"},
        "bio": "x".repeat(745),
    });
    Bytes::from(serde_json::to_vec(&v).unwrap())
}

/// Prints the median and the range of `ROUNDS` rounds of `n` iterations.
fn report(name: &str, n: u32, rounds: &mut [Duration]) {
    rounds.sort();
    let us = |d: Duration| d.as_secs_f64() * 1e6 / f64::from(n);
    let median = us(rounds[rounds.len() / 2]);
    println!(
        "{name:<50} {median:>6.2} us/request (min {:.2}, max {:.2}; {:>7.0} req/s per core)",
        us(rounds[0]),
        us(rounds[rounds.len() - 1]),
        1e6 / median
    );
}

const ROUNDS: usize = 7;

fn rounds(n: u32, mut f: impl FnMut()) -> Vec<Duration> {
    (0..ROUNDS)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..n {
                f();
            }
            t.elapsed()
        })
        .collect()
}

async fn through_layer(name: &str, layer: InputLayer, body: &Bytes, n: u32) {
    let inner = service_fn(|_req: Request<portcullis_layers::Body>| async {
        Ok::<_, std::convert::Infallible>(Response::new(Full::<Bytes>::default()))
    });
    let mut svc = layer.layer(inner);
    let req = || {
        Request::post("/users")
            .header("content-type", "application/json")
            .header("content-length", body.len())
            .body(Full::new(body.clone()))
            .unwrap()
    };
    for _ in 0..1000 {
        let res =
            ServiceExt::<Request<Full<Bytes>>>::ready(&mut svc).await.unwrap().call(req()).await.unwrap();
        assert_eq!(res.status(), 200);
    }
    let mut times = Vec::new();
    for _ in 0..ROUNDS {
        let t = Instant::now();
        for _ in 0..n {
            let res =
                ServiceExt::<Request<Full<Bytes>>>::ready(&mut svc).await.unwrap().call(req()).await.unwrap();
            black_box(res);
        }
        times.push(t.elapsed());
    }
    report(name, n, &mut times);
}

fn main() {
    let body = body();
    println!("input validation, {} byte JSON body\n", body.len());
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let n = 10_000;
    let compiled = Schema::compile(&schema(), Dialect::Auto, UnknownFields::Reject).unwrap();

    let mut t = rounds(n, || {
        black_box(parse_strict(black_box(&body), &JsonLimits::default()).unwrap());
    });
    report("strict parse (depth/entries/dup/prototype keys)", n, &mut t);
    let mut t = rounds(n, || {
        black_box(serde_json::from_slice::<serde_json::Value>(black_box(&body)).unwrap());
    });
    report("  for reference: serde_json::from_slice to Value", n, &mut t);
    let doc = parse_strict(&body, &JsonLimits::default()).unwrap();
    let mut t = rounds(n, || {
        let mut out = Vec::new();
        assert!(compiled.check(black_box(&doc), "/body", &mut out));
    });
    report("schema check of the parsed document", n, &mut t);

    rt.block_on(async {
        through_layer(
            "InputLayer, always-on checks (no schema)",
            InputLayer::new(InputPolicy::default()),
            &body,
            n,
        )
        .await;
        let typical = InputPolicy::default()
            .content_types(vec!["application/json".into()])
            .body_schema(Schema::compile(&schema(), Dialect::Auto, UnknownFields::Reject).unwrap(), true);
        through_layer("InputLayer, typical route schema", InputLayer::new(typical), &body, n).await;
    });
}
