//! TLS for the HTTP server: the rustls configuration (ring provider), a certificate resolver
//! that re-reads the certificate and key when they change, client-certificate verifiers per
//! `client_auth_type`, and a listener that does the handshakes for the server.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::{self, PemObject as _};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{
    DigitallySignedStruct, DistinguishedName, RootCertStore, ServerConfig, SignatureScheme,
};
use sha2::{Digest as _, Sha256};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use super::{ClientAuth, TlsSettings, TlsVersion};

/// How often, at most, the certificate and key files are looked at for a change. The check
/// happens during a handshake, so an idle server does no file reads at all.
pub const RELOAD_CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// A client that has not finished its handshake by then is dropped (slow-loris guard).
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Finished handshakes waiting for the HTTP server to pick them up.
const ACCEPTED_QUEUE: usize = 64;

/// A TLS setting that cannot be used: the key under `tls_server_config` and what is wrong.
#[derive(Debug)]
pub(super) struct TlsSetupError {
    pub(super) key: &'static str,
    pub(super) problem: String,
}

fn setup_error(key: &'static str, problem: impl Into<String>) -> TlsSetupError {
    TlsSetupError {
        key,
        problem: problem.into(),
    }
}

/// The rustls server configuration for `settings`: reads and checks the certificate, key and
/// client CA now; the certificate and key are re-read on change while serving.
pub(super) fn server_config(settings: &TlsSettings) -> Result<Arc<ServerConfig>, TlsSetupError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let versions: &[&'static rustls::SupportedProtocolVersion] =
        match (settings.min_version, settings.max_version) {
            (TlsVersion::Tls12, TlsVersion::Tls12) => &[&rustls::version::TLS12],
            (TlsVersion::Tls12, TlsVersion::Tls13) => {
                &[&rustls::version::TLS13, &rustls::version::TLS12]
            }
            (TlsVersion::Tls13, _) => &[&rustls::version::TLS13],
        };
    let resolver = ReloadingCertResolver::new(
        settings.cert_file.clone(),
        settings.key_file.clone(),
        provider.clone(),
    )?;
    let verifier = client_verifier(settings, &provider)?;
    let config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .map_err(|error| setup_error("min_version", error.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_cert_resolver(Arc::new(resolver));
    Ok(Arc::new(config))
}

fn client_verifier(
    settings: &TlsSettings,
    provider: &Arc<CryptoProvider>,
) -> Result<Arc<dyn ClientCertVerifier>, TlsSetupError> {
    // Read the CA whenever one is named, so a broken file fails at start-up in every mode.
    let roots = match &settings.client_ca_file {
        Some(path) => Some(Arc::new(read_client_cas(path)?)),
        None => None,
    };
    let any = |mandatory| -> Arc<dyn ClientCertVerifier> {
        Arc::new(AnyClientCert {
            mandatory,
            algorithms: provider.signature_verification_algorithms,
        })
    };
    let verified = |optional: bool| -> Result<Arc<dyn ClientCertVerifier>, TlsSetupError> {
        let Some(roots) = roots.clone() else {
            return Err(setup_error("client_ca_file", "missing"));
        };
        let builder = WebPkiClientVerifier::builder_with_provider(roots, provider.clone());
        let builder = if optional {
            builder.allow_unauthenticated()
        } else {
            builder
        };
        builder
            .build()
            .map_err(|error| setup_error("client_ca_file", error.to_string()))
    };
    match settings.client_auth {
        ClientAuth::NoClientCert => Ok(WebPkiClientVerifier::no_client_auth()),
        ClientAuth::RequestClientCert => Ok(any(false)),
        ClientAuth::RequireAnyClientCert => Ok(any(true)),
        ClientAuth::VerifyClientCertIfGiven => verified(true),
        ClientAuth::RequireAndVerifyClientCert => verified(false),
    }
}

fn read_client_cas(path: &Path) -> Result<RootCertStore, TlsSetupError> {
    let bytes = read_file(path).map_err(|problem| setup_error("client_ca_file", problem))?;
    let certificates = parse_certificates(&bytes).map_err(|problem| {
        setup_error("client_ca_file", format!("{}: {problem}", path.display()))
    })?;
    let mut roots = RootCertStore::empty();
    for certificate in certificates {
        roots.add(certificate).map_err(|error| {
            setup_error(
                "client_ca_file",
                format!("{}: not a usable CA certificate: {error}", path.display()),
            )
        })?;
    }
    Ok(roots)
}

fn read_file(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|error| format!("cannot read {}: {error}", path.display()))
}

/// PEM problems in words; never quotes the input (it may be key material).
fn describe_pem_error(error: &pem::Error, what: &str) -> String {
    match error {
        pem::Error::NoItemsFound => format!("no {what} found in it"),
        pem::Error::MissingSectionEnd { .. } => "a PEM section has no END line".to_owned(),
        pem::Error::IllegalSectionStart { .. } => "a PEM BEGIN line is malformed".to_owned(),
        pem::Error::Base64Decode(_) => "a PEM section is not valid base64".to_owned(),
        pem::Error::SectionTooLarge => "a PEM section is too large".to_owned(),
        _ => "not valid PEM".to_owned(),
    }
}

fn parse_certificates(bytes: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    let certificates = CertificateDer::pem_slice_iter(bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| describe_pem_error(&error, "certificate"))?;
    if certificates.is_empty() {
        return Err("no PEM CERTIFICATE found in it".to_owned());
    }
    Ok(certificates)
}

/// Which of the pair is wrong, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
enum PairError {
    Cert(String),
    Key(String),
}

impl fmt::Display for PairError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PairError::Cert(problem) => write!(f, "cert_file: {problem}"),
            PairError::Key(problem) => write!(f, "key_file: {problem}"),
        }
    }
}

/// Builds the signing key from PEM bytes; checks that the key belongs to the certificate.
fn certified_key(
    cert_pem: &[u8],
    key_pem: &[u8],
    provider: &CryptoProvider,
) -> Result<CertifiedKey, PairError> {
    let chain = parse_certificates(cert_pem).map_err(PairError::Cert)?;
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|error| {
        PairError::Key(describe_pem_error(
            &error,
            "PEM private key (PKCS#8, PKCS#1 or SEC1)",
        ))
    })?;
    let signing_key = provider.key_provider.load_private_key(key).map_err(|_| {
        PairError::Key(
            "the private key is not one rustls can sign with (RSA, ECDSA P-256/P-384 or Ed25519)"
                .to_owned(),
        )
    })?;
    let certified = CertifiedKey::new(chain, signing_key);
    match certified.keys_match() {
        Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {
            Ok(certified)
        }
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => Err(
            PairError::Key("does not match the certificate in cert_file".to_owned()),
        ),
        Err(error) => Err(PairError::Cert(format!(
            "the first certificate does not parse: {error}"
        ))),
    }
}

/// Serves the certificate and key from their files, re-reading them (at most every
/// [`RELOAD_CHECK_INTERVAL`], during a handshake) when their contents change. A pair that
/// does not load keeps the previous one in service and logs a warning.
struct ReloadingCertResolver {
    cert_file: PathBuf,
    key_file: PathBuf,
    provider: Arc<CryptoProvider>,
    current: RwLock<Arc<CertifiedKey>>,
    watch: Mutex<FileWatch>,
}

/// What the last look at the files found.
struct FileWatch {
    checked_at: Instant,
    /// SHA-256 of both files' contents (so an equal rewrite or an mtime-preserving copy is
    /// judged by content; the key's bytes are not kept).
    seen: [u8; 32],
    /// The last problem logged, so a broken pair warns once, not at every check.
    problem: Option<String>,
}

impl fmt::Debug for ReloadingCertResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReloadingCertResolver")
            .field("cert_file", &self.cert_file)
            .field("key_file", &self.key_file)
            .finish_non_exhaustive()
    }
}

fn pair_digest(cert_pem: &[u8], key_pem: &[u8]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(Sha256::digest(cert_pem));
    hasher.update(Sha256::digest(key_pem));
    hasher.finalize().into()
}

impl ReloadingCertResolver {
    fn new(
        cert_file: PathBuf,
        key_file: PathBuf,
        provider: Arc<CryptoProvider>,
    ) -> Result<Self, TlsSetupError> {
        let cert_pem =
            read_file(&cert_file).map_err(|problem| setup_error("cert_file", problem))?;
        let key_pem = read_file(&key_file).map_err(|problem| setup_error("key_file", problem))?;
        let key = certified_key(&cert_pem, &key_pem, &provider).map_err(|error| match error {
            PairError::Cert(problem) => {
                setup_error("cert_file", format!("{}: {problem}", cert_file.display()))
            }
            PairError::Key(problem) => {
                setup_error("key_file", format!("{}: {problem}", key_file.display()))
            }
        })?;
        Ok(ReloadingCertResolver {
            watch: Mutex::new(FileWatch {
                checked_at: Instant::now(),
                seen: pair_digest(&cert_pem, &key_pem),
                problem: None,
            }),
            current: RwLock::new(Arc::new(key)),
            cert_file,
            key_file,
            provider,
        })
    }

    /// Re-reads the files if the interval has passed and nobody else is doing it.
    fn refresh(&self) {
        // Another handshake already checking: serve the current pair rather than wait.
        let Ok(mut watch) = self.watch.try_lock() else {
            return;
        };
        if watch.checked_at.elapsed() < RELOAD_CHECK_INTERVAL {
            return;
        }
        watch.checked_at = Instant::now();
        let loaded = match (read_file(&self.cert_file), read_file(&self.key_file)) {
            (Ok(cert_pem), Ok(key_pem)) => {
                let seen = pair_digest(&cert_pem, &key_pem);
                if seen == watch.seen {
                    return;
                }
                watch.seen = seen;
                certified_key(&cert_pem, &key_pem, &self.provider)
                    .map_err(|error| error.to_string())
            }
            (Err(problem), _) => Err(format!("cert_file: {problem}")),
            (_, Err(problem)) => Err(format!("key_file: {problem}")),
        };
        match loaded {
            Ok(key) => {
                *self.current.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(key);
                watch.problem = None;
                tracing::info!(
                    cert_file = %self.cert_file.display(),
                    "TLS certificate and key changed on disk: reloaded"
                );
            }
            Err(problem) => {
                if watch.problem.as_ref() != Some(&problem) {
                    tracing::warn!(
                        cert_file = %self.cert_file.display(),
                        key_file = %self.key_file.display(),
                        problem = %problem,
                        "the TLS certificate or key changed but cannot be used; still serving the previous pair"
                    );
                    watch.problem = Some(problem);
                }
            }
        }
    }
}

impl ResolvesServerCert for ReloadingCertResolver {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.refresh();
        Some(
            self.current
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
        )
    }
}

/// `RequestClientCert` / `RequireAnyClientCert`: takes any client certificate without
/// checking who issued it, but still makes the client prove it holds the key.
#[derive(Debug)]
struct AnyClientCert {
    mandatory: bool,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ClientCertVerifier for AnyClientCert {
    fn client_auth_mandatory(&self) -> bool {
        self.mandatory
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// Yields TLS connections: a task accepts TCP connections (at most as many open as the
/// connection cap allows) and runs each handshake in a task of its own (so a slow client
/// delays nobody), with a timeout.
///
/// Dropping it (as the server does once graceful shutdown starts) stops accepting and
/// abandons handshakes in progress; connections already handed over are served to the end.
pub struct TlsListener {
    accepted: mpsc::Receiver<Accepted>,
    local_addr: SocketAddr,
    acceptor: tokio::task::AbortHandle,
}

/// A finished handshake, with its slot under the connection cap.
type Accepted = (TlsStream<TcpStream>, SocketAddr, OwnedSemaphorePermit);

impl TlsListener {
    /// Starts accepting on `listener` with `config`; each connection, from its TCP accept
    /// until it closes, holds a permit of `slots`.
    pub fn new(
        listener: TcpListener,
        config: Arc<ServerConfig>,
        slots: Arc<Semaphore>,
    ) -> io::Result<TlsListener> {
        let local_addr = listener.local_addr()?;
        let (sender, accepted) = mpsc::channel(ACCEPTED_QUEUE);
        let acceptor = tokio::spawn(accept_loop(
            listener,
            TlsAcceptor::from(config),
            slots,
            sender,
        ))
        .abort_handle();
        Ok(TlsListener {
            accepted,
            local_addr,
            acceptor,
        })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The next connection whose handshake succeeded.
    pub async fn accept(&mut self) -> Accepted {
        match self.accepted.recv().await {
            Some(connection) => connection,
            // The accept task only ends when aborted, which happens when this is dropped.
            None => std::future::pending().await,
        }
    }
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        self.acceptor.abort();
    }
}

async fn accept_loop(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    slots: Arc<Semaphore>,
    sender: mpsc::Sender<Accepted>,
) {
    // Owned here, so aborting this task aborts the handshakes in progress too.
    let mut handshakes = JoinSet::new();
    loop {
        while handshakes.try_join_next().is_some() {}
        let permit = crate::server::acquire(&slots).await;
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                crate::server::handle_accept_error(&error).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let acceptor = acceptor.clone();
        let sender = sender.clone();
        handshakes.spawn(async move {
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(stream)) => {
                    // The server stopped taking connections: nothing to do but drop it.
                    let _ = sender.send((stream, peer, permit)).await;
                }
                Ok(Err(error)) => {
                    tracing::debug!(peer = %peer, error = %error, "TLS handshake failed");
                }
                Err(_) => tracing::debug!(peer = %peer, "TLS handshake timed out"),
            }
        });
    }
}
