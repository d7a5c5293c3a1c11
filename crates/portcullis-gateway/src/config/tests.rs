use serde::de::DeserializeOwned;

use super::auth::{RawAuth, RawJwt};
use super::cors::{RawCors, RawCorsRoute};
use super::errors::RawErrors;
use super::headers::{RawCspPolicy, RawHeaders, RawHstsPolicy};
use super::input::RawInput;
use super::limits::RawLimits;
use super::openapi::RawOpenApi;
use super::paths::RawPaths;
use super::ratelimit::{RawRateLimit, RawRateLimitOptions};
use super::routes::{RawAllow, RawRoute, RawRoutes};
use super::server::{RawAdmin, RawServer, RawTls};
use super::state::RawState;
use super::upstream::RawUpstream;
use super::*;

/// A route admitting everything, for tests about other sections.
const CATCH_ALL: &str = "\n[[route]]\npath = \"/**\"\npublic = true\n";

/// Validates `text`, adding a public catch-all route when it declares none.
fn check(text: &str) -> Result<Config, Problems> {
    let text = if text.contains("[[route]]") || text.contains("unmatched") {
        text.to_owned()
    } else {
        format!("{text}{CATCH_ALL}")
    };
    from_str(&text, Path::new("."), &|name| (name == "SET_VAR").then(|| "s3cr3t-value".to_owned()))
}

fn problems(text: &str) -> Vec<String> {
    match check(text) {
        Ok(_) => panic!("accepted:\n{text}"),
        Err(p) => p.0.iter().map(ToString::to_string).collect(),
    }
}

#[test]
fn c21_a_config_without_routes_is_refused_with_the_way_out() {
    let p = from_str("[upstream]\nurl = \"http://127.0.0.1:3000\"\n", Path::new("."), &|_| None).unwrap_err();
    assert_eq!(p.0.len(), 1, "{p}");
    assert_eq!(p.0[0].at, "route");
    assert!(p.0[0].message.contains("deny by default") && p.0[0].message.contains("insecure_pass_through"));
    let open =
        "[upstream]\nurl = \"http://127.0.0.1:3000\"\n[routes]\nunmatched = \"insecure_pass_through\"\n";
    let c = from_str(open, Path::new("."), &|_| None).unwrap();
    assert_eq!(c.routes.unmatched, portcullis_layers::route::Unmatched::InsecurePassThrough);
}

#[test]
fn minimal_config_is_upstream_url_and_routes() {
    let c = check("[upstream]\nurl = \"http://127.0.0.1:3000\"\n").unwrap();
    assert_eq!(c.server.listen.to_string(), "0.0.0.0:8080");
    assert_eq!(c.admin.unwrap().to_string(), "127.0.0.1:9901");
    assert_eq!(c.limits, Limits::default());
    assert!(c.server.trusted_proxies.is_empty());
    assert_eq!(c.headers.effective(true).len(), 12);
}

#[test]
fn syntax_error_has_line_and_column() {
    let p = problems("[upstream]\nurl = \"http://x\n");
    assert_eq!(p.len(), 1);
    assert!(p[0].starts_with("line 2, column"), "{p:?}");
}

#[test]
fn every_problem_at_once_with_its_place() {
    let p = problems(
        r#"
[server]
listen = "nope"
trusted_proxies = ["10.0.0.0/8", "bogus", "0.0.0.0/0"]
bogus_key = 1

[upstream]
url = "ftp://x"
timeout = "30 parsecs"
headers = { "X-Api-Key" = "literal-secret-value", "X-Other" = "${MISSING_VAR}" }

[headers]
x_frame_options = "ALLOWALL"
content_security_policy = { directives = { "script-src" = ["'self'", "self"], "scrpt-src" = ["'self'"] } }

[limits]
body = "lots"
max_headers = 0

[cors]
origins = ["*"]
credentials = true

[[rate_limit]]
routes = ["/auth/**"]
"#,
    );
    let want = [
        "server.bogus_key: unknown field",
        "upstream.url: expected an absolute http:// URL",
        "upstream.timeout: missing or unknown duration unit",
        "upstream.headers.X-Api-Key: secrets can't be written in the file",
        "upstream.headers.X-Other: environment variable MISSING_VAR is not set",
        "headers.x_frame_options: expected one of: DENY, SAMEORIGIN",
        "headers.content_security_policy.directives.script-src[1]: keyword must be quoted",
        "headers.content_security_policy.directives.scrpt-src: unknown CSP directive",
        "limits.body: expected a size",
        "limits.max_headers: must be between 1 and 1000",
        "cors.origins: \"*\" with credentials = true",
        "rate_limit[0].limit: missing",
    ];
    for w in want {
        assert!(p.iter().any(|x| x.starts_with(w)), "missing {w:?} in {p:#?}");
    }
    // The typed errors of [server] are found key by key as well.
    let p2 = problems("[server]\nlisten = 5\nredirect_http = []\n[upstream]\nurl = \"http://x\"\n");
    assert!(
        p2.iter()
            .any(|x| x
                .starts_with("server.listen: expected text (in quotes), found a number (line 2, column 1)")),
        "{p2:?}"
    );
    assert!(
        p2.iter().any(|x| x.starts_with("server.redirect_http: expected text (in quotes), found a list")),
        "{p2:?}"
    );
    // The misspelt key's neighbours are still checked.
    assert!(p.iter().any(|x| x.starts_with("server.listen: expected ip:port")), "{p:#?}");
}

#[test]
fn semantic_problems_are_listed_together() {
    let p = problems(
        r#"
[server]
listen = "0.0.0.0:8080"
trusted_proxies = ["10.0.0.0/8", "bogus", "::/0"]
redirect_http = "0.0.0.0:8080"
"#,
    );
    let want = [
        "server.trusted_proxies[1]: expected an IP address",
        "server.trusted_proxies[2]: trusting every address",
        "server.redirect_http: must differ",
        "upstream.url: missing",
    ];
    for w in want {
        assert!(p.iter().any(|x| x.starts_with(w)), "missing {w:?} in {p:#?}");
    }
}

#[test]
fn c32_secret_values_never_in_problems_or_render() {
    let text = "[upstream]\nurl = \"http://127.0.0.1:1\"\nheaders = { \"X-Api-Key\" = \"${SET_VAR}\" }\n";
    let c = check(text).unwrap();
    assert_eq!(c.upstream.headers[0].1.expose(), "s3cr3t-value");
    let rendered = c.render();
    assert!(!rendered.contains("s3cr3t-value"));
    assert!(rendered.contains("x-api-key: ***"));
    assert!(!format!("{c:?}").contains("s3cr3t-value"));
}

#[test]
fn redirect_needs_tls_and_tls_files_must_exist() {
    let p = problems("[server]\nredirect_http = \"0.0.0.0:8081\"\n[upstream]\nurl = \"http://x\"\n");
    assert!(p.iter().any(|x| x.starts_with("server.redirect_http: redirects to HTTPS need")), "{p:?}");
    let p = problems(
        "[server.tls]\ncert = \"/nonexistent/cert.pem\"\nkey = \"/nonexistent/key.pem\"\n[upstream]\nurl = \"http://x\"\n",
    );
    assert!(p.iter().any(|x| x.starts_with("server.tls.cert: can't read the file")), "{p:?}");
    let p = problems("[server.tls]\ncert = \"c.pem\"\n[upstream]\nurl = \"http://x\"\n");
    assert!(p.iter().any(|x| x.starts_with("server.tls.key: missing")), "{p:?}");
}

#[test]
fn header_overrides_and_removal() {
    let c = check(
        r#"
[upstream]
url = "http://x"
[headers]
x_frame_options = "DENY"
x_xss_protection = false
strict_transport_security = { max_age = "1d", include_subdomains = false }
content_security_policy = { directives = { "img-src" = ["'self'", "https://cdn.example.com"], "upgrade-insecure-requests" = false } }
"#,
    )
    .unwrap();
    let eff = c.headers.effective(true);
    let get = |n: &str| eff.iter().find(|(k, _)| k == n).map(|(_, v)| v.to_str().unwrap().to_owned());
    assert_eq!(get("x-frame-options").as_deref(), Some("DENY"));
    assert_eq!(get("x-xss-protection"), None);
    assert_eq!(get("strict-transport-security").as_deref(), Some("max-age=86400"));
    let csp = get("content-security-policy").unwrap();
    assert!(csp.contains("img-src 'self' https://cdn.example.com"));
    assert!(!csp.contains("upgrade-insecure-requests"));
    let c = check("[upstream]\nurl = \"http://x\"\n[headers]\ncontent_security_policy = false\n").unwrap();
    assert!(c.headers.effective(false).iter().all(|(k, _)| k != "content-security-policy"));
}

#[test]
fn paths_only_stricter() {
    let c = check("[upstream]\nurl = \"http://x\"\n[paths]\nmerge_slashes = false\n").unwrap();
    assert!(!c.paths.merge_slashes);
    let p = problems("[upstream]\nurl = \"http://x\"\n[paths]\nallow_encoded_slash = true\n");
    assert!(p[0].starts_with("paths.allow_encoded_slash: unknown field"), "{p:?}");
}

/// The field names serde accepts for `T`, read from its unknown-field error.
fn fields<T: DeserializeOwned>() -> Vec<String> {
    let mut probe = toml::Table::new();
    probe.insert("__probe__".to_owned(), toml::Value::Integer(1));
    let msg = match T::deserialize(toml::Value::Table(probe)) {
        Ok(_) => panic!("probe accepted"),
        Err(e) => e.to_string(),
    };
    let expected = msg.split("expected").nth(1).unwrap_or_else(|| panic!("{msg}"));
    expected.split('`').skip(1).step_by(2).map(str::to_owned).collect()
}

#[test]
fn docs_cover_every_key() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/configuration.md");
    let docs = std::fs::read_to_string(path).unwrap();
    let sections: Vec<(&str, Vec<String>)> = vec![
        ("server", fields::<RawServer>()),
        ("server.tls", fields::<RawTls>()),
        ("server.tls.acme", fields::<super::server::RawAcme>()),
        ("admin", fields::<RawAdmin>()),
        ("upstream", fields::<RawUpstream>()),
        ("headers", fields::<RawHeaders>()),
        ("headers.content_security_policy", fields::<RawCspPolicy>()),
        ("headers.strict_transport_security", fields::<RawHstsPolicy>()),
        ("limits", fields::<RawLimits>()),
        ("paths", fields::<RawPaths>()),
        ("errors", fields::<RawErrors>()),
        ("cors", fields::<RawCors>()),
        ("cors.routes", fields::<RawCorsRoute>()),
        ("state", fields::<RawState>()),
        ("rate_limit_options", fields::<RawRateLimitOptions>()),
        ("rate_limit", fields::<RawRateLimit>()),
        ("routes", fields::<RawRoutes>()),
        ("route", fields::<RawRoute>()),
        ("route.allow", fields::<RawAllow>()),
        ("auth", fields::<RawAuth>()),
        ("auth.jwt", fields::<RawJwt>()),
        ("input", fields::<RawInput>()),
        ("openapi", fields::<RawOpenApi>()),
        ("identity", fields::<super::identity::RawIdentity>()),
        ("sessions", fields::<super::sessions::RawSessions>()),
        ("cookies", fields::<super::cookies::RawCookies>()),
    ];
    let mut total = 0;
    let mut known: Vec<String> = Vec::new();
    for (section, keys) in &sections {
        assert!(!keys.is_empty(), "{section}");
        for k in keys {
            let full = format!("`{section}.{k}`");
            assert!(docs.contains(&full), "docs/configuration.md does not document {full}");
            known.push(format!("{section}.{k}"));
            total += 1;
        }
    }
    assert!(total >= 40, "only {total} keys found: the probe is broken");
    // The other way (issue 13): every key the reference documents in its
    // tables is one the code accepts, so the docs can't promise a key that
    // `check` would refuse.
    let mut documented = 0;
    for line in docs.lines() {
        let Some(key) = line.strip_prefix("| `").and_then(|l| l.split('`').next()) else { continue };
        if !key.contains('.') || key.contains(' ') {
            continue;
        }
        let key = key.split('[').next().unwrap_or(key);
        // Nested tables of free-form keys (`cors.routes.paths` is a key of `cors.routes`).
        assert!(
            known.iter().any(|k| k == key) || key.starts_with("headers.content_security_policy.directives"),
            "docs/configuration.md documents `{key}`, which the code does not accept"
        );
        documented += 1;
    }
    assert!(documented >= 40, "only {documented} documented keys found: the probe is broken");
    for s in SECTIONS {
        let heading = docs
            .lines()
            .filter(|l| l.starts_with("## "))
            .any(|l| l.contains(&format!("`[{s}]`")) || l.contains(&format!("`[[{s}]]`")));
        assert!(heading, "no section heading for [{s}]");
    }
}

#[test]
fn example_config_is_valid() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../portcullis.example.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let base = path.parent().unwrap();
    let c = from_str(&text, base, &|name| (name == "UPSTREAM_API_KEY").then(|| "example".to_owned()));
    assert!(c.is_ok(), "{}", c.err().map(|p| p.to_string()).unwrap_or_default());
}

#[test]
fn c8_cors_problems_are_located() {
    let p = problems(
        r#"
[upstream]
url = "http://x"
[cors]
origins = ["https://app.example.com", "null", "https://*.com", "https://app.example.com.evil.test/"]
methods = ["GET", "TRACE"]
headers = ["*"]
[[cors.routes]]
paths = ["/public/**", "no-slash"]
origins = ["*"]
credentials = true
"#,
    );
    let want = [
        "cors.origins[1]: \"null\" is the origin of sandboxed iframes",
        "cors.origins[2]: a wildcard must be followed by a registrable domain",
        "cors.origins[3]: an origin has no path",
        "cors.methods[1]: CONNECT and TRACE can't be allowed",
        "cors.headers[0]: \"*\" is not allowed",
        "cors.routes[0].paths[1]: a path pattern starts with '/'",
    ];
    for w in want {
        assert!(p.iter().any(|x| x.starts_with(w)), "missing {w:?} in {p:#?}");
    }
    let p = problems("[upstream]\nurl = \"http://x\"\n[cors]\norigins = [\"*\"]\ncredentials = true\n");
    assert!(p[0].starts_with("cors.origins: \"*\" with credentials = true would let every site"), "{p:?}");
}

#[test]
fn c8_cors_config_builds() {
    let c = check(
        r#"
[upstream]
url = "http://x"
[cors]
origins = ["https://app.example.com"]
credentials = true
max_age = "1h"
[[cors.routes]]
paths = ["/public/**"]
origins = ["*"]
credentials = false
[[cors.routes]]
paths = ["/internal/**"]
enabled = false
"#,
    )
    .unwrap();
    let r = c.render();
    assert!(r.contains("default: origins https://app.example.com; credentials true"), "{r}");
    assert!(r.contains("/public/**: origins *; credentials false"), "{r}");
    assert!(r.contains("/internal/**: CORS off"), "{r}");
}

#[test]
fn c11_rate_limit_problems_are_located() {
    let p = problems(
        r#"
[upstream]
url = "http://x"
[state]
redis = "redis://user:hunter2@cache:6379"
[rate_limit_options]
headers = "draft-9"
on_store_error = "shrug"
[[rate_limit]]
name = "login"
routes = ["/auth/**", "auth"]
key = "subject"
limit = 0
window = "15m"
[[rate_limit]]
name = "login"
key = "cookie:sid"
limit = 10
window = "forever"
bogus = 1
"#,
    );
    let want = [
        "state.redis: this URL carries credentials",
        "rate_limit_options.headers: expected one of \"draft-8\", \"draft-7\", \"draft-6\", \"off\"",
        "rate_limit_options.on_store_error: expected one of \"fail_open\", \"fail_closed\"",
        "rate_limit[0].routes[1]: a path pattern starts with '/'",
        "rate_limit[0].key: \"subject\" counts by the verified user, and no authentication is configured",
        "rate_limit[0].limit: must be between 1 and 1000000",
        "rate_limit[1].bogus: unknown field",
    ];
    for w in want {
        assert!(p.iter().any(|x| x.starts_with(w)), "missing {w:?} in {p:#?}");
    }
    assert!(p.iter().all(|x| !x.contains("hunter2")), "{p:?}");
}

#[test]
fn c11_rate_limit_config_builds() {
    let c = from_str(
        r#"
[upstream]
url = "http://x"
[state]
redis = "${REDIS_URL}"
[rate_limit_options]
headers = "draft-7"
legacy_headers = true
[[rate_limit]]
name = "login"
routes = ["/auth/**"]
methods = ["post"]
limit = 5
window = "15m"
[[rate_limit]]
key = "header:X-Api-Key"
limit = 1000
window = "1h"
[[route]]
path = "/**"
public = true
"#,
        Path::new("."),
        &|n| (n == "REDIS_URL").then(|| "redis://:pw@127.0.0.1:6379".to_owned()),
    )
    .unwrap();
    assert_eq!(c.rate_limit.store, crate::config::StoreKind::Redis);
    assert_eq!(c.rate_limit.rules.len(), 2);
    assert_eq!(c.rate_limit.rules[1].name, "rule1");
    let r = c.render();
    assert!(r.contains("login: 5 per 15m by ip (IPv6 /56) on POST /auth/**"), "{r}");
    assert!(r.contains("redis ***"), "{r}");
    assert!(!r.contains("pw@"), "{r}");
    // Without [state], the memory store; asking for redis without it is an error.
    let p = problems("[upstream]\nurl = \"http://x\"\n[rate_limit_options]\nstore = \"redis\"\n");
    assert!(p[0].starts_with("rate_limit_options.store: \"redis\" needs [state]"), "{p:?}");
}

// C21 C27 (issue 12 item 3): `check` warns where a later route would take
// methods an earlier, stricter route on the same path leaves out.
#[test]
fn c27_weaker_method_fallthrough_is_warned_about() {
    let jwt = "[upstream]\nurl = \"http://127.0.0.1:3000\"\n[auth.jwt]\nissuer = \"https://idp.test/\"\naudience = \"api\"\njwks_url = \"https://idp.test/jwks\"\n";
    let routes = |extra: &str| {
        format!(
            "{jwt}[[route]]\npath = \"/api/users/{{id}}\"\nmethods = [\"GET\", \"PUT\"]\nallow = {{ roles = [\"admin\"], owner = \"id\" }}\n{extra}[[route]]\npath = \"/api/**\"\n"
        )
    };
    // The documented shape is safe as written: no fall-through, no warning.
    let cfg = check(&routes("")).unwrap();
    assert!(cfg.warnings.0.is_empty(), "{}", cfg.warnings);
    // Opting in is reported, naming both routes and the methods.
    let cfg = check(&routes("insecure_method_fallthrough = true\n")).unwrap();
    let w: Vec<String> = cfg.warnings.0.iter().map(ToString::to_string).collect();
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(
        w[0].starts_with("route #2: takes POST, PATCH, DELETE requests for paths route #1 matches"),
        "{w:?}"
    );
    assert!(w[0].ends_with("(line 12, column 1)"), "{w:?}");
    // The same path declared again for another method with a weaker rule.
    let cfg = check(&format!(
        "{jwt}[[route]]\npath = \"/api/users/{{id}}\"\nmethods = [\"GET\"]\nallow = {{ roles = [\"admin\"] }}\n[[route]]\npath = \"/api/users/{{id}}\"\nmethods = [\"DELETE\"]\npublic = true\n"
    ))
    .unwrap();
    assert_eq!(cfg.warnings.0.len(), 1, "{}", cfg.warnings);
    assert_eq!(cfg.warnings.0[0].at, "route[1]");
    // A WebSocket route must admit GET.
    let p = problems(&format!("{jwt}[[route]]\npath = \"/ws\"\nmethods = [\"POST\"]\nwebsocket = true\n"));
    assert!(p.iter().any(|m| m.starts_with("route #1 websocket:")), "{p:?}");
}

// Issue 13: sizes and durations are typed fields. A bad one is a located
// problem at its key; a value out of range names the range in the file's
// own units; its neighbours are not reported.
#[test]
fn typed_units_are_located_and_ranged_in_file_units() {
    let p = problems(
        "[upstream]\nurl = \"http://127.0.0.1:3000\"\ntimeout = \"30\"\nconnect_timeout = 5\n[limits]\nbody = \"2tb\"\nheader_bytes = \"4kb\"\nidle_timeout = \"0s\"\n[state]\nredis_timeout = \"1m\"\n[input]\nmax_string_length = \"0\"\n",
    );
    let want = [
        "upstream.connect_timeout: expected a duration such as \"30s\" or \"500ms\", found a number (line 4, column 1)",
        "upstream.timeout: missing or unknown duration unit (use ms, s, m, h or d) (line 3, column 1)",
        "limits.body: unknown size unit (use b, kb, mb or gb) (line 6, column 1)",
        "limits.header_bytes: must be between 8kb and 1mb (line 7, column 1)",
        "limits.idle_timeout: must be between 1ms and 1d (line 8, column 1)",
        "state.redis_timeout: must be between 1ms and 10s (line 10, column 1)",
        "input.max_string_length: must be between 1 byte and 1gb (line 12, column 1)",
    ];
    assert_eq!(p, want);
    // Accepted spellings, and the values they give.
    let c = check(
        "[upstream]\nurl = \"http://127.0.0.1:3000\"\ntimeout = \"2m\"\n[limits]\nbody = 4096\nheader_bytes = \"32KB\"\n[cors]\norigins = [\"https://a.example\"]\nmax_age = \"1h\"\n",
    )
    .unwrap();
    assert_eq!(c.upstream.timeout, std::time::Duration::from_secs(120));
    assert_eq!((c.limits.body, c.limits.header_bytes), (4096, 32 * 1024));
}

// Issue 16 item 5: the upstream pool is capped and reaped, both by keys
// checked against their ranges.
#[test]
fn upstream_pool_keys_are_ranged_and_located() {
    let c = check("[upstream]\nurl = \"http://127.0.0.1:3000\"\n").unwrap();
    assert_eq!(c.upstream.max_idle_connections, 1024);
    assert_eq!(c.upstream.idle_connection_timeout, std::time::Duration::from_secs(4), "under Node's 5 s");
    let c = check(
        "[upstream]\nurl = \"http://127.0.0.1:3000\"\nmax_idle_connections = 0\nidle_connection_timeout = \"30s\"\n",
    )
    .unwrap();
    assert_eq!(c.upstream.max_idle_connections, 0);
    assert_eq!(c.upstream.idle_connection_timeout, std::time::Duration::from_secs(30));
    let p = problems(
        "[upstream]\nurl = \"http://127.0.0.1:3000\"\nmax_idle_connections = 70000\nidle_connection_timeout = \"500ms\"\n",
    );
    assert_eq!(
        p,
        [
            "upstream.max_idle_connections: must be between 0 and 65536 (line 3, column 1)",
            "upstream.idle_connection_timeout: must be between 1s and 1h (line 4, column 1)",
        ]
    );
}

// Issue 16 item 7: `server.workers` is "auto" (one per CPU the process may
// use) or a count; anything else is one located problem that doesn't echo.
#[test]
fn server_workers_is_auto_or_a_count() {
    let cpus = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    let c = check("[upstream]\nurl = \"http://127.0.0.1:3000\"\n").unwrap();
    assert_eq!((c.server.workers, c.server.workers_auto), (cpus, true));
    assert!(c.render().contains(&format!("workers           {cpus} (auto: one per CPU)")), "{}", c.render());
    let c = check("[server]\nworkers = \"auto\"\n[upstream]\nurl = \"http://127.0.0.1:3000\"\n").unwrap();
    assert_eq!((c.server.workers, c.server.workers_auto), (cpus, true));
    let c = check("[server]\nworkers = 3\n[upstream]\nurl = \"http://127.0.0.1:3000\"\n").unwrap();
    assert_eq!((c.server.workers, c.server.workers_auto), (3, false));
    assert!(c.render().contains("workers           3\n"), "{}", c.render());
    for (value, line) in [("0", 2), ("257", 2), ("-1", 2), ("\"many-s3cret\"", 2), ("true", 2), ("1.5", 2)] {
        let p =
            problems(&format!("[server]\nworkers = {value}\n[upstream]\nurl = \"http://127.0.0.1:3000\"\n"));
        assert_eq!(
            p,
            [format!("server.workers: expected \"auto\" or a number from 1 to 256 (line {line}, column 1)")],
            "{value}"
        );
    }
}

// Issue 13: keyword fields are typed too: a wrong word or a wrong type is
// one problem at its key listing the words, and never echoes what was
// written (a secret pasted into the wrong key stays out of the output).
#[test]
fn keyword_fields_list_their_words_without_echoing() {
    let p = problems(
        "[upstream]\nurl = \"http://127.0.0.1:3000\"\n[routes]\nunmatched = \"pass-s3cret\"\n[input]\ninjection = 1\nunknown_fields = \"ALLOW\"\n[rate_limit_options]\nstore = \"postgres\"\n[[route]]\npath = \"/**\"\npublic = true\ninjection = \"warn\"\n",
    );
    let want = [
        "routes.unmatched: expected one of \"not_found\", \"insecure_pass_through\" (line 4, column 1)",
        "input.injection: expected one of \"off\", \"report\", \"block\", found a number (line 6, column 1)",
        "input.unknown_fields: expected one of \"reject\", \"allow\" (line 7, column 1)",
        "rate_limit_options.store: expected one of \"memory\", \"redis\" (line 9, column 1)",
        "route #1 injection: expected one of \"off\", \"report\", \"block\" (line 13, column 1)",
    ];
    let mut got = p.clone();
    got.sort();
    let mut want: Vec<String> = want.iter().map(|s| (*s).to_owned()).collect();
    want.sort();
    assert_eq!(got, want);
    assert!(!p.iter().any(|m| m.contains("s3cret") || m.contains("postgres") || m.contains("warn")), "{p:?}");
}

#[test]
fn c25_c9_sessions_and_cookies_problems_are_located() {
    let p = problems(
        r#"
[server]
listen = "127.0.0.1:0"
[upstream]
url = "http://127.0.0.1:9"
[sessions]
store = "redis"
cookie = "bad name"
same_site = "off"
idle_timeout = "2h"
absolute_timeout = "1h"
[cookies]
secure = "sometimes"
[csrf]
enabled = true
[[route]]
path = "/**"
public = true
"#,
    );
    for want in [
        "sessions: cookie sessions log in the built-in identity's users: add an [identity] section",
        "sessions.store: \"redis\" needs [state] redis or redis_cluster",
        "sessions.cookie: not a cookie name",
        "sessions.same_site: \"lax\" or \"strict\"",
        "sessions.idle_timeout: must not be longer than sessions.absolute_timeout",
        "cookies.secure",
        "csrf: unknown section: CSRF protection comes with [sessions]",
    ] {
        assert!(p.iter().any(|x| x.contains(want)), "missing {want:?} in:\n{p:?}");
    }
}

// C4: `[server.tls.acme]` refuses what a CA or the challenges can't do,
// every problem at its key.
#[test]
fn c4_acme_settings_are_checked_key_by_key() {
    let up = "[upstream]\nurl = \"http://127.0.0.1:3000\"\n";
    let p = problems(&format!(
        "{up}[server.tls.acme]\ndomains = [\"*.example.com\", \"localhost\", \"10.0.0.1\"]\ncontact = [\"ops@example.com\"]\ndirectory = \"http://ca.test/dir\"\nchallenge = \"dns-01\"\nrenew_before = \"2h\"\nca_root = \"missing.pem\"\n"
    ));
    for want in [
        "server.tls.acme.domains[0]: wildcards need the DNS-01 challenge",
        "server.tls.acme.domains[1]: expected a DNS name",
        "server.tls.acme.domains[2]: expected a DNS name",
        "server.tls.acme.contact[0]: expected a mailto: URL",
        "server.tls.acme.directory: expected an https:// directory URL",
        "server.tls.acme.challenge: expected \"tls-alpn-01\" or \"http-01\"",
        "server.tls.acme.renew_before: must be between",
        "server.tls.acme.ca_root: no such file",
    ] {
        assert!(p.iter().any(|x| x.starts_with(want)), "{want} missing from {p:#?}");
    }
    let p = problems(&format!(
        "{up}[server.tls]\ncert = \"c.pem\"\nkey = \"k.pem\"\n[server.tls.acme]\ndomains = [\"api.example.com\"]\n"
    ));
    assert!(p.iter().any(|x| x.starts_with("server.tls.acme: give cert and key files")), "{p:#?}");
    let p = problems(&format!(
        "{up}[server.tls.acme]\ndomains = [\"api.example.com\"]\nchallenge = \"http-01\"\n"
    ));
    assert!(p.iter().any(|x| x.starts_with("server.tls.acme.challenge: \"http-01\" is answered")), "{p:#?}");
    // The defaults: Let's Encrypt, TLS-ALPN-01, 30 days, `acme` beside the file.
    let c = check(&format!("{up}[server.tls.acme]\ndomains = [\"API.example.com\"]\n")).unwrap();
    let s = c.server.tls.unwrap().acme.unwrap().settings().clone();
    assert_eq!(s.domains, ["api.example.com"]);
    assert_eq!(s.directory, "https://acme-v02.api.letsencrypt.org/directory");
    assert_eq!(s.challenge, crate::acme::Challenge::TlsAlpn01);
    assert_eq!(s.renew_before, std::time::Duration::from_secs(30 * 86_400));
    assert_eq!(s.cache, Path::new("./acme"));
}
