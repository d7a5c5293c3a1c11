//! ACME certificates (RFC 8555, C4): `[server.tls.acme]` obtains and renews
//! the main listener's certificate from Let's Encrypt or any ACME CA, with
//! the TLS-ALPN-01 challenge (RFC 8737, answered on the TLS listener
//! itself) or HTTP-01 (answered on the `server.redirect_http` listener).
//!
//! The certificate is served through a resolver that a renewal updates in
//! place: no reload, no dropped connection. The account key, the
//! certificate and its private key are kept in the cache directory (files
//! 0600), so a restart does not ask the CA again.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwapOption;
use instant_acme::{
    Account, AccountCredentials, AuthorizationStatus, ChallengeType, Identifier, NewAccount, NewOrder,
    OrderStatus, RetryPolicy,
};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// The ALPN protocol of TLS-ALPN-01 validation handshakes (RFC 8737).
pub const ACME_TLS_ALPN: &[u8] = b"acme-tls/1";

/// Which challenge proves control of the names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Challenge {
    /// TLS-ALPN-01, on the TLS listener (the CA connects to port 443).
    TlsAlpn01,
    /// HTTP-01, on the redirect listener (the CA connects to port 80).
    Http01,
}

/// `[server.tls.acme]`, validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AcmeSettings {
    /// The names on the certificate.
    pub domains: Vec<String>,
    /// Account contacts (`mailto:` URLs).
    pub contact: Vec<String>,
    /// The CA's directory URL.
    pub directory: String,
    /// The challenge type.
    pub challenge: Challenge,
    /// Where the account and certificate are kept.
    pub cache: PathBuf,
    /// Renew when the certificate expires sooner than this.
    pub renew_before: Duration,
    /// Extra CA root to trust for the directory's HTTPS (a private ACME
    /// server); the system's web roots otherwise.
    pub ca_root: Option<PathBuf>,
}

/// Serves the current certificate, and TLS-ALPN-01 challenge certificates
/// to validators (handshakes offering only `acme-tls/1`).
#[derive(Debug, Default)]
pub struct CertResolver {
    current: ArcSwapOption<CertifiedKey>,
    challenges: Mutex<HashMap<String, Arc<CertifiedKey>>>,
}

impl ResolvesServerCert for CertResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let validation = hello.alpn().is_some_and(|mut protocols| protocols.any(|p| p == ACME_TLS_ALPN));
        if validation {
            let name = hello.server_name()?.to_ascii_lowercase();
            return self.challenges.lock().unwrap_or_else(PoisonError::into_inner).get(&name).cloned();
        }
        self.current.load_full()
    }
}

/// The ACME manager of one `[server.tls.acme]`.
pub struct Acme {
    settings: AcmeSettings,
    resolver: Arc<CertResolver>,
    /// HTTP-01: token -> key authorization.
    http01: Mutex<HashMap<String, String>>,
    /// When the served certificate expires.
    not_after: Mutex<Option<SystemTime>>,
    issuing: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for Acme {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Acme").field("domains", &self.settings.domains).finish_non_exhaustive()
    }
}

/// Why an issuance failed: a short text without secrets.
#[derive(Debug)]
pub struct AcmeError(pub String);

impl std::fmt::Display for AcmeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn err(context: &str) -> impl Fn(instant_acme::Error) -> AcmeError + '_ {
    move |e| AcmeError(format!("{context}: {e}"))
}

impl Acme {
    /// The manager for `settings`, serving the cached certificate if one
    /// covers the names. Nothing is fetched yet ([`Acme::run`]).
    pub fn new(settings: AcmeSettings) -> Acme {
        let acme = Acme {
            resolver: Arc::new(CertResolver::default()),
            http01: Mutex::new(HashMap::new()),
            not_after: Mutex::new(None),
            issuing: tokio::sync::Mutex::new(()),
            settings,
        };
        let (cert, key) = (acme.path("cert.pem"), acme.path("key.pem"));
        if let (Ok(chain), Ok(key)) = (std::fs::read(&cert), std::fs::read(&key)) {
            match acme.install(&chain, &key) {
                Ok(()) => {}
                Err(e) => {
                    tracing::warn!(target: "portcullis::acme", error = %e, "cached certificate not used")
                }
            }
        }
        acme
    }

    /// The settings.
    pub fn settings(&self) -> &AcmeSettings {
        &self.settings
    }

    /// The certificate resolver for the TLS listener.
    pub fn resolver(&self) -> Arc<CertResolver> {
        self.resolver.clone()
    }

    /// Whether a certificate is being served.
    pub fn has_certificate(&self) -> bool {
        self.resolver.current.load().is_some()
    }

    /// The HTTP-01 answer for `token`, while a validation is pending.
    pub fn http01_answer(&self, token: &str) -> Option<String> {
        self.http01.lock().unwrap_or_else(PoisonError::into_inner).get(token).cloned()
    }

    fn path(&self, file: &str) -> PathBuf {
        self.settings.cache.join(file)
    }

    /// Parses a PEM chain and key, checks the chain covers every name,
    /// and serves it.
    fn install(&self, chain_pem: &[u8], key_pem: &[u8]) -> Result<(), AcmeError> {
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(chain_pem)
            .collect::<Result<_, _>>()
            .map_err(|_| AcmeError("malformed certificate PEM".to_owned()))?;
        let leaf = chain.first().ok_or_else(|| AcmeError("no certificate in the chain".to_owned()))?;
        let (_, parsed) = x509_parser::parse_x509_certificate(leaf)
            .map_err(|_| AcmeError("unparsable certificate".to_owned()))?;
        let names: Vec<String> = parsed
            .subject_alternative_name()
            .ok()
            .flatten()
            .map(|san| {
                san.value
                    .general_names
                    .iter()
                    .filter_map(|n| match n {
                        x509_parser::extensions::GeneralName::DNSName(d) => Some(d.to_ascii_lowercase()),
                        _ => None,
                    })
                    .collect()
            })
            .unwrap_or_default();
        if let Some(missing) = self.settings.domains.iter().find(|d| !names.contains(d)) {
            return Err(AcmeError(format!("the certificate does not name {missing}")));
        }
        let not_after = SystemTime::UNIX_EPOCH
            + Duration::from_secs(u64::try_from(parsed.validity().not_after.timestamp()).unwrap_or(0));
        let key =
            PrivateKeyDer::from_pem_slice(key_pem).map_err(|_| AcmeError("malformed key PEM".to_owned()))?;
        let signer = crate::tls::provider()
            .key_provider
            .load_private_key(key)
            .map_err(|_| AcmeError("unsupported private key".to_owned()))?;
        self.resolver.current.store(Some(Arc::new(CertifiedKey::new(chain, signer))));
        *self.not_after.lock().unwrap_or_else(PoisonError::into_inner) = Some(not_after);
        Ok(())
    }

    /// When the next renewal is due (now if there is no certificate).
    pub fn renewal_due(&self) -> SystemTime {
        match *self.not_after.lock().unwrap_or_else(PoisonError::into_inner) {
            Some(t) => t.checked_sub(self.settings.renew_before).unwrap_or(SystemTime::UNIX_EPOCH),
            None => SystemTime::UNIX_EPOCH,
        }
    }

    /// Issues a certificate if none is served or the renewal is due.
    /// Returns whether it issued one.
    pub async fn renew_if_due(&self) -> Result<bool, AcmeError> {
        let _one = self.issuing.lock().await;
        if self.has_certificate() && SystemTime::now() < self.renewal_due() {
            return Ok(false);
        }
        self.issue().await.map(|()| true)
    }

    /// Keeps the certificate issued and renewed: checks now, then when the
    /// renewal is due (at least hourly while failing, at most every 12 h).
    pub async fn run(self: Arc<Self>) {
        loop {
            let wait = match self.renew_if_due().await {
                Ok(issued) => {
                    if issued {
                        tracing::info!(
                            target: "portcullis::acme",
                            domains = ?self.settings.domains,
                            "certificate issued"
                        );
                    }
                    let until = self.renewal_due().duration_since(SystemTime::now()).unwrap_or_default();
                    until.clamp(Duration::from_secs(60), Duration::from_secs(12 * 3600))
                }
                Err(e) => {
                    tracing::error!(
                        target: "portcullis::acme",
                        directory = %self.settings.directory,
                        domains = ?self.settings.domains,
                        error = %e,
                        "certificate issuance failed; retrying in an hour"
                    );
                    Duration::from_secs(3600)
                }
            };
            tokio::time::sleep(wait).await;
        }
    }

    async fn account(&self) -> Result<Account, AcmeError> {
        let builder = || match &self.settings.ca_root {
            Some(root) => Account::builder_with_root(root).map_err(err("the ACME CA root")),
            None => Account::builder().map_err(err("the HTTP client")),
        };
        let stored = self.path("account.json");
        if let Ok(text) = std::fs::read(&stored)
            && let Ok(creds) = serde_json::from_slice::<AccountCredentials>(&text)
        {
            return builder()?.from_credentials(creds).await.map_err(err("restoring the account"));
        }
        let contact: Vec<&str> = self.settings.contact.iter().map(String::as_str).collect();
        let new =
            NewAccount { contact: &contact, terms_of_service_agreed: true, only_return_existing: false };
        let (account, creds) = builder()?
            .create(&new, self.settings.directory.clone(), None)
            .await
            .map_err(err("creating the account"))?;
        let json = serde_json::to_vec(&creds).map_err(|_| AcmeError("serializing the account".to_owned()))?;
        write_private(&stored, &json)?;
        Ok(account)
    }

    async fn issue(&self) -> Result<(), AcmeError> {
        std::fs::create_dir_all(&self.settings.cache)
            .map_err(|e| AcmeError(format!("creating the cache directory: {}", e.kind())))?;
        let account = self.account().await?;
        let ids: Vec<Identifier> = self.settings.domains.iter().map(|d| Identifier::Dns(d.clone())).collect();
        let mut order = account.new_order(&NewOrder::new(&ids)).await.map_err(err("new order"))?;
        let kind = match self.settings.challenge {
            Challenge::TlsAlpn01 => ChallengeType::TlsAlpn01,
            Challenge::Http01 => ChallengeType::Http01,
        };
        let result = async {
            let mut authorizations = order.authorizations();
            while let Some(a) = authorizations.next().await {
                let mut authz = a.map_err(err("authorization"))?;
                match authz.status {
                    AuthorizationStatus::Pending => {}
                    AuthorizationStatus::Valid => continue,
                    s => return Err(AcmeError(format!("authorization is {s:?}"))),
                }
                let Identifier::Dns(domain) = authz.identifier().identifier.clone() else {
                    return Err(AcmeError("an identifier that is not a DNS name".to_owned()));
                };
                let mut challenge = authz
                    .challenge(kind.clone())
                    .ok_or_else(|| AcmeError(format!("the CA offers no {kind:?} challenge")))?;
                let key_auth = challenge.key_authorization();
                match self.settings.challenge {
                    Challenge::TlsAlpn01 => {
                        let cert = challenge_cert(&domain, key_auth.digest().as_ref())?;
                        self.resolver
                            .challenges
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .insert(domain.to_ascii_lowercase(), Arc::new(cert));
                    }
                    Challenge::Http01 => {
                        self.http01
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .insert(challenge.token.clone(), key_auth.as_str().to_owned());
                    }
                }
                challenge.set_ready().await.map_err(err("challenge ready"))?;
            }
            let retry = RetryPolicy::new().timeout(Duration::from_secs(120));
            match order.poll_ready(&retry).await.map_err(err("validation"))? {
                OrderStatus::Ready => {}
                s => return Err(AcmeError(format!("the order is {s:?} after validation"))),
            }
            let key_pem = order.finalize().await.map_err(err("finalize"))?;
            let chain_pem = order.poll_certificate(&retry).await.map_err(err("certificate"))?;
            Ok((chain_pem, key_pem))
        }
        .await;
        // Challenge answers are served only while their validation runs.
        self.resolver.challenges.lock().unwrap_or_else(PoisonError::into_inner).clear();
        self.http01.lock().unwrap_or_else(PoisonError::into_inner).clear();
        let (chain_pem, key_pem) = result?;
        // On disk before it is served: a restart (or a reader of the cache)
        // never finds a certificate served but not kept. The CI run of
        // 2026-12-04 caught the test reading the cache between the two.
        write_private(&self.path("key.pem"), key_pem.as_bytes())?;
        write_private(&self.path("cert.pem"), chain_pem.as_bytes())?;
        if let Err(e) = self.install(chain_pem.as_bytes(), key_pem.as_bytes()) {
            // Not a certificate this build can serve: not kept either.
            let _ = std::fs::remove_file(self.path("cert.pem"));
            let _ = std::fs::remove_file(self.path("key.pem"));
            return Err(e);
        }
        Ok(())
    }
}

/// The self-signed TLS-ALPN-01 certificate for `domain`: the name, and the
/// critical acmeIdentifier extension holding the key authorization's
/// SHA-256 (RFC 8737 section 3).
fn challenge_cert(domain: &str, digest: &[u8]) -> Result<CertifiedKey, AcmeError> {
    let fail = |_| AcmeError("making the challenge certificate".to_owned());
    let mut params = rcgen::CertificateParams::new(vec![domain.to_owned()]).map_err(fail)?;
    params.custom_extensions = vec![rcgen::CustomExtension::new_acme_identifier(digest)];
    let key = rcgen::KeyPair::generate().map_err(fail)?;
    let cert = params.self_signed(&key).map_err(fail)?;
    let der =
        PrivateKeyDer::try_from(key.serialize_der()).map_err(|_| AcmeError("challenge key".to_owned()))?;
    let signer = crate::tls::provider()
        .key_provider
        .load_private_key(der)
        .map_err(|_| AcmeError("challenge key".to_owned()))?;
    Ok(CertifiedKey::new(vec![cert.der().clone()], signer))
}

/// Writes a file readable by its owner only, replacing it atomically.
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), AcmeError> {
    use std::io::Write;
    let fail = |e: std::io::Error| AcmeError(format!("writing {}: {}", path.display(), e.kind()));
    let tmp = path.with_extension("tmp");
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts.open(&tmp).map_err(fail)?;
    f.write_all(bytes).map_err(fail)?;
    f.sync_all().map_err(fail)?;
    std::fs::rename(&tmp, path).map_err(fail)
}
