//! Profiling aid (not a benchmark): runs `check_strict` over bench/instructions' 1 MB document N times.
#![allow(missing_docs, clippy::unwrap_used)]
use portcullis_layers::json::{JsonLimits, check_strict, parse_strict};
fn main() {
    let item = format!("{{\"name\":\"{}\",\"n\":12345}}", "y".repeat(300));
    let big = format!("{{\"items\":[{}]}}", vec![item; 3125].join(","));
    let limits = JsonLimits::default();
    let n: usize = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(10);
    let parse = std::env::args().nth(2).is_some();
    for _ in 0..n {
        if parse {
            std::hint::black_box(parse_strict(std::hint::black_box(big.as_bytes()), &limits).unwrap());
        } else {
            check_strict(std::hint::black_box(big.as_bytes()), &limits).unwrap();
        }
    }
}
