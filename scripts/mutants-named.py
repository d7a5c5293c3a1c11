#!/usr/bin/env python3
"""The named breaks of issue 20, made by hand: each one must fail the
crate's unit tests. Each is applied to the working tree, tested, and undone
(also on error or Ctrl-C). Run by scripts/mutants; usage: mutants-named.py ROOT."""
import os
import subprocess
import sys

LAYERS = "crates/portcullis-layers/src/"

# (name, file, text, replacement, test filter)
BREAKS = [
    ("1 iss compared as 'starts with the configured one'", "auth/jwt.rs",
     "policy.issuers.iter().any(|a| a == i)", "policy.issuers.iter().any(|a| i.starts_with(a.as_str()))", "auth::"),
    ("1 iss compared as 'is a prefix of the configured one'", "auth/jwt.rs",
     "policy.issuers.iter().any(|a| a == i)", "policy.issuers.iter().any(|a| a.starts_with(i))", "auth::"),
    ("1 iss compared as a substring", "auth/jwt.rs",
     "policy.issuers.iter().any(|a| a == i)", "policy.issuers.iter().any(|a| a.contains(i) || i.contains(a.as_str()))", "auth::"),
    ("1 iss compared ignoring case", "auth/jwt.rs",
     "policy.issuers.iter().any(|a| a == i)", "policy.issuers.iter().any(|a| a.eq_ignore_ascii_case(i))", "auth::"),
    ("2 aud compared as a prefix", "auth/jwt.rs",
     "policy.audiences.iter().any(|p| p == a)", "policy.audiences.iter().any(|p| p.starts_with(a))", "auth::"),
    ("2 aud compared as 'starts with the configured one'", "auth/jwt.rs",
     "policy.audiences.iter().any(|p| p == a)", "policy.audiences.iter().any(|p| a.starts_with(p.as_str()))", "auth::"),
    ("8 algorithm list not enforced by the verifier", "auth/jwt.rs",
     "    if !policy.algorithms.contains(&alg) {\n        return Err(TokenError::AlgorithmNotAllowed);\n    }\n", "", "auth::"),
    ("3 object depth check deleted", "json.rs",
     "        st.open(self.depth)?;\n        let mut out = Map::new();",
     "        let mut out = Map::new();", "json::"),
    ("3 object members not one level deeper", "json.rs",
     "map.next_value_seed(Seed { state: st, depth: self.depth + 1 })", "map.next_value_seed(Seed { state: st, depth: self.depth })", "json::"),
    ("4 non-ASCII X-Forwarded-For line skipped", "client.rs",
     "Err(_) => entries.clear(),", "Err(_) => {}", "client::"),
    ("5 shadowed: only the first route compared", "route.rs",
     ".position(|r| r.shadows(later, self.opts))", ".position(|r| r.shadows(later, self.opts)).filter(|&i| i == 0)", "route::"),
    ("5 shadowed: a constant answer", "route.rs",
     "        let mut out = Vec::new();\n        for (j, later) in self.routes.iter().enumerate() {",
     "        if !self.routes.is_empty() { return vec![(0, 1)]; }\n        let mut out = Vec::new();\n        for (j, later) in self.routes.iter().enumerate() {", "route::"),
    ("6 spaces before the separator not skipped", "redact.rs",
     "                while k < b.len() && matches!(b[k], b' ' | b'\\t') {\n                    k += 1;\n                }\n                if k < b.len() && (b[k] == b'=' || b[k] == b':') {",
     "                if k < b.len() && (b[k] == b'=' || b[k] == b':') {", "redact::"),
    ("7 no PeerAddr: everyone becomes 0.0.0.0", "client.rs",
     "            let res = crate::rejection::reject(&req, crate::rejection::RejectionKind::Internal);\n            return crate::future::OrReject::Rejected { res: Some(res) };",
     "            let _ = &WARNED;\n            let unknown = PeerAddr { addr: ([0, 0, 0, 0], 0).into(), https: false };\n            let info = self.trusted.resolve(&unknown, req.headers());\n            req.extensions_mut().insert(info);\n            return crate::future::OrReject::Inner { fut: self.inner.call(req) };",
     "client::"),
    ("8 pass-through skips a declared path's 405", "route.rs",
     "                if allowed.is_empty() {\n                    if self.table.unmatched == Unmatched::InsecurePassThrough {",
     "                if allowed.is_empty() || self.table.unmatched == Unmatched::InsecurePassThrough {\n                    if self.table.unmatched == Unmatched::InsecurePassThrough {", "route::"),
]


def main():
    root = sys.argv[1]
    os.chdir(root)
    survived = []
    for name, rel, old, new, flt in BREAKS:
        path = LAYERS + rel
        original = open(path).read()
        if original.count(old) != 1:
            print(f"  STALE  {name}: the text to break is not in {path} exactly once; update scripts/mutants-named.py")
            survived.append(name)
            continue
        try:
            open(path, "w").write(original.replace(old, new, 1))
            r = subprocess.run(["cargo", "test", "-q", "-p", "portcullis-layers", "--lib", flt],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        finally:
            open(path, "w").write(original)
        out = r.stdout.decode(errors="replace")
        if r.returncode == 0:
            print(f"  MISSED {name}")
            survived.append(name)
        elif "error[E" in out or "error: could not compile" in out:
            print(f"  BROKEN {name}: the break does not compile; update scripts/mutants-named.py")
            survived.append(name)
        else:
            print(f"  caught {name}")
    print(f"named breaks: {len(BREAKS) - len(survived)}/{len(BREAKS)} caught")
    return 1 if survived else 0


if __name__ == "__main__":
    sys.exit(main())
