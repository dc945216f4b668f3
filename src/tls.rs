//! TLS contexts from the `tls-*` directives, as Redis's `tlsConfigure` builds its
//! `SSL_CTX`: the server side for the TLS port (one per `tls-auth-clients` mode, so
//! CONFIG SET of that directive applies to the next connection without a reload, as in
//! Redis), and the client side for outgoing links (replication and the cluster bus, once
//! they are built: they take [`TlsContext::client_config`]).
//!
//! Why rustls with the *ring* provider: ring builds from the crate registry with only a
//! C compiler (which the Rust linker needs anyway; `.ci/run` installs build-essential and
//! nothing more), while aws-lc-rs compiles the much larger AWS-LC, whose build has needed
//! cmake (and nasm on some targets) depending on version and target, and OpenSSL bindings
//! need its headers and a system library. The price: rustls 0.23.48 deprecates its ring
//! provider because it has no post-quantum key exchange (X25519MLKEM768 is aws-lc-rs's);
//! key exchange is X25519 or the NIST curves, as with Redis on OpenSSL before 3.5.
//! rustls implements TLS 1.2 and 1.3 only, Redis's default `tls-protocols`; TLSv1 and
//! TLSv1.1 are refused at configuration time. The connection drives a
//! `rustls::ServerConnection` over the same readiness-based socket as a plain connection
//! (`server::tls`), so no second I/O stack (tokio-rustls) is needed.
//!
//! Error texts and log lines are Redis's (`tls.c`), so an operator's searches still work.

use std::path::Path;
use std::sync::Arc;

use parking_lot::RwLock;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig, SupportedProtocolVersion};

use crate::config::{TlsAuthClients, TlsSettings};

/// Why a TLS context could not be built; each text is the line Redis logs for it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    #[error("No tls-cert-file configured!")]
    NoCertFile,
    #[error("No tls-key-file configured!")]
    NoKeyFile,
    #[error("Either tls-ca-cert-file or tls-ca-cert-dir must be specified when tls-cluster, tls-replication or tls-auth-clients are enabled!")]
    NoCa,
    #[error("Invalid tls-protocols specified. Use a combination of 'TLSv1', 'TLSv1.1', 'TLSv1.2' and 'TLSv1.3'.")]
    BadProtocols,
    #[error("{0} is specified in tls-protocols but not supported: Rill's TLS implements TLSv1.2 and TLSv1.3.")]
    UnsupportedProtocol(String),
    #[error("Failed to load certificate: {file}: {reason}")]
    Certificate { file: String, reason: String },
    #[error("Failed to load private key: {file}: {reason}")]
    PrivateKey { file: String, reason: String },
    #[error("Failed to configure CA certificate(s) file/directory: {0}")]
    Ca(String),
    #[error("Failed to configure ciphersuites: {0}")]
    Ciphersuites(String),
    /// rustls refused the combination (e.g. the key does not match the certificate).
    #[error("Failed to configure TLS: {0}")]
    Rustls(String),
}

/// The configurations new TLS connections are made with.
struct Contexts {
    /// `tls-auth-clients no`.
    no_auth: Arc<ServerConfig>,
    /// `yes` and `optional`; `None` without CA certificates, when no certificate can verify.
    required: Option<Arc<ServerConfig>>,
    optional: Option<Arc<ServerConfig>>,
    /// Outgoing links; `None` without CA certificates (no peer could be verified).
    client: Option<Arc<ClientConfig>>,
    /// Outgoing cluster links: as `client`, but the peer's certificate is checked against
    /// the CA only, not against its address ([`ChainOnly`]).
    cluster_client: Option<Arc<ClientConfig>>,
}

/// Verifies a peer's certificate chain against the CA certificates and not its name: the
/// cluster bus dials peers by address, and Redis (OpenSSL with `SSL_VERIFY_PEER` and no
/// host check) accepts any certificate of the cluster's CA there, so certificates made for
/// Redis Cluster, often without IP subject names, work unchanged.
#[derive(Debug)]
struct ChainOnly(Arc<rustls::client::WebPkiServerVerifier>);

impl rustls::client::danger::ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &rustls::pki_types::ServerName<'_>,
        ocsp_response: &[u8],
        now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        // The chain is checked first; only a name mismatch after it is forgiven.
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::NotValidForName
                | rustls::CertificateError::NotValidForNameContext { .. },
            )) => Ok(rustls::client::danger::ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// The live TLS configuration: replaced whole by [`TlsContext::configure`], read by every
/// TLS accept. A connection keeps the configuration it was accepted with.
#[derive(Default)]
pub struct TlsContext {
    current: RwLock<Option<Arc<Contexts>>>,
}

impl TlsContext {
    /// Builds the contexts from `settings` and makes them current; on failure the previous
    /// ones stay (Redis's "atomic" reconfigure).
    ///
    /// # Errors
    /// The first problem found, in the order Redis checks: files named, CA given when
    /// needed, protocols, then loading each file.
    pub fn configure(&self, settings: &TlsSettings) -> Result<(), TlsError> {
        let built = build(settings)?;
        *self.current.write() = Some(Arc::new(built));
        Ok(())
    }

    /// Whether a configuration has been built (TLS is in use).
    pub fn is_configured(&self) -> bool {
        self.current.read().is_some()
    }

    /// The configuration a connection accepted now uses under `mode`; `None` when TLS is
    /// not configured, or `mode` needs CA certificates that are not configured (the
    /// connection is then refused, as every certificate would fail to verify).
    pub fn server_config(&self, mode: TlsAuthClients) -> Option<Arc<ServerConfig>> {
        let current = self.current.read();
        let c = current.as_ref()?;
        match mode {
            TlsAuthClients::No => Some(c.no_auth.clone()),
            TlsAuthClients::Yes => c.required.clone(),
            TlsAuthClients::Optional => c.optional.clone(),
        }
    }

    /// The configuration outgoing TLS links use: peers verified against the CA
    /// certificates, presenting `tls-client-cert-file` (or `tls-cert-file`).
    pub fn client_config(&self) -> Option<Arc<ClientConfig>> {
        self.current.read().as_ref()?.client.clone()
    }

    /// What the cluster bus (`tls-cluster yes`) uses: the server side requiring a peer
    /// certificate from the CA, and the client side presenting this node's and checking the
    /// peer's chain (not its name, as Redis). `None` without CA certificates.
    pub fn cluster_link(&self) -> Option<(Arc<ServerConfig>, Arc<ClientConfig>)> {
        let current = self.current.read();
        let c = current.as_ref()?;
        Some((c.required.clone()?, c.cluster_client.clone()?))
    }
}

/// `tls-protocols`, as Redis's `parseProtocolsConfig`: space-separated, case-insensitive.
fn protocols(text: &str) -> Result<Vec<&'static SupportedProtocolVersion>, TlsError> {
    if text.trim().is_empty() {
        return Ok(vec![&rustls::version::TLS12, &rustls::version::TLS13]);
    }
    let mut versions: Vec<&'static SupportedProtocolVersion> = Vec::new();
    for token in text.split(' ').filter(|t| !t.is_empty()) {
        let v = match token.to_ascii_lowercase().as_str() {
            "tlsv1.2" => &rustls::version::TLS12,
            "tlsv1.3" => &rustls::version::TLS13,
            "tlsv1" | "tlsv1.1" => return Err(TlsError::UnsupportedProtocol(token.to_string())),
            _ => return Err(TlsError::BadProtocols),
        };
        if !versions.iter().any(|known| known.version == v.version) {
            versions.push(v);
        }
    }
    Ok(versions)
}

/// The ring provider, its TLS 1.3 suites limited to `tls-ciphersuites` (OpenSSL's names,
/// colon-separated, as `SSL_CTX_set_ciphersuites` takes them).
fn provider(ciphersuites: &str) -> Result<CryptoProvider, TlsError> {
    // rustls 0.23.48 deprecates the ring provider because it lacks post-quantum key
    // exchange (X25519MLKEM768, aws-lc-rs only); see the module docs for why ring anyway.
    #[allow(deprecated)]
    let mut provider = rustls::crypto::ring::default_provider();
    if ciphersuites.trim().is_empty() {
        return Ok(provider);
    }
    use rustls::CipherSuite as C;
    let mut wanted = Vec::new();
    for name in ciphersuites.split(':').filter(|n| !n.is_empty()) {
        let suite = match name {
            "TLS_AES_128_GCM_SHA256" => C::TLS13_AES_128_GCM_SHA256,
            "TLS_AES_256_GCM_SHA384" => C::TLS13_AES_256_GCM_SHA384,
            "TLS_CHACHA20_POLY1305_SHA256" => C::TLS13_CHACHA20_POLY1305_SHA256,
            _ => return Err(TlsError::Ciphersuites(ciphersuites.to_string())),
        };
        wanted.push(suite);
    }
    // The order given is the server's preference, as in OpenSSL.
    let all = std::mem::take(&mut provider.cipher_suites);
    let (tls13, tls12): (Vec<_>, Vec<_>) = all
        .into_iter()
        .partition(|s| s.version() == &rustls::version::TLS13);
    provider.cipher_suites = wanted
        .iter()
        .filter_map(|w| tls13.iter().find(|s| s.suite() == *w).copied())
        .chain(tls12)
        .collect();
    Ok(provider)
}

fn certificates(file: &str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let fail = |reason: String| TlsError::Certificate {
        file: file.to_string(),
        reason,
    };
    let chain = CertificateDer::pem_file_iter(file)
        .map_err(|e| fail(pem_reason(e)))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| fail(pem_reason(e)))?;
    if chain.is_empty() {
        return Err(fail("no certificate in the file".to_string()));
    }
    Ok(chain)
}

fn private_key(file: &str) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(file).map_err(|e| TlsError::PrivateKey {
        file: file.to_string(),
        reason: pem_reason(e),
    })
}

/// A PEM error without the I/O error's " (os error N)" suffix.
fn pem_reason(e: rustls::pki_types::pem::Error) -> String {
    match e {
        rustls::pki_types::pem::Error::Io(io) => {
            let text = io.to_string();
            match text.find(" (os error ") {
                Some(cut) => text[..cut].to_string(),
                None => text,
            }
        }
        rustls::pki_types::pem::Error::NoItemsFound => "no PEM section found".to_string(),
        other => format!("{other:?}"),
    }
}

/// The CA certificates of `tls-ca-cert-file` and every file in `tls-ca-cert-dir` (files
/// that hold no certificate are skipped, as OpenSSL's lookup ignores them).
fn ca_roots(settings: &TlsSettings) -> Result<Option<RootCertStore>, TlsError> {
    if settings.ca_cert_file.is_empty() && settings.ca_cert_dir.is_empty() {
        return Ok(None);
    }
    let mut roots = RootCertStore::empty();
    let mut add_file = |path: &Path, required: bool| -> Result<(), TlsError> {
        let found = match CertificateDer::pem_file_iter(path) {
            Ok(iter) => iter.collect::<Result<Vec<_>, _>>(),
            Err(e) => Err(e),
        };
        match found {
            Ok(certs) => {
                for cert in certs {
                    roots
                        .add(cert)
                        .map_err(|e| TlsError::Ca(format!("{}: {e}", path.display())))?;
                }
                Ok(())
            }
            Err(e) if required => Err(TlsError::Ca(format!(
                "{}: {}",
                path.display(),
                pem_reason(e)
            ))),
            Err(_) => Ok(()),
        }
    };
    if !settings.ca_cert_file.is_empty() {
        add_file(Path::new(&settings.ca_cert_file), true)?;
    }
    if !settings.ca_cert_dir.is_empty() {
        let entries = std::fs::read_dir(&settings.ca_cert_dir)
            .map_err(|e| TlsError::Ca(format!("{}: {}", settings.ca_cert_dir, e)))?;
        let mut paths: Vec<_> = entries.flatten().map(|e| e.path()).collect();
        paths.sort();
        for p in paths.iter().filter(|p| p.is_file()) {
            add_file(p, false)?;
        }
    }
    if roots.is_empty() {
        return Err(TlsError::Ca("no CA certificate found".to_string()));
    }
    Ok(Some(roots))
}

fn build(settings: &TlsSettings) -> Result<Contexts, TlsError> {
    if settings.cert_file.is_empty() {
        return Err(TlsError::NoCertFile);
    }
    if settings.key_file.is_empty() {
        return Err(TlsError::NoKeyFile);
    }
    let needs_ca =
        settings.auth_clients != TlsAuthClients::No || settings.cluster || settings.replication;
    if needs_ca && settings.ca_cert_file.is_empty() && settings.ca_cert_dir.is_empty() {
        return Err(TlsError::NoCa);
    }
    let versions = protocols(&settings.protocols)?;
    let provider = Arc::new(provider(&settings.ciphersuites)?);
    let chain = certificates(&settings.cert_file)?;
    let key = private_key(&settings.key_file)?;
    let roots = ca_roots(settings)?.map(Arc::new);

    let rustls_err = |e: rustls::Error| TlsError::Rustls(e.to_string());
    let server = |verifier: Arc<dyn rustls::server::danger::ClientCertVerifier>| {
        ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&versions)
            .map_err(rustls_err)?
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain.clone(), key.clone_key())
            .map_err(rustls_err)
            .map(Arc::new)
    };
    let no_auth = server(WebPkiClientVerifier::no_client_auth())?;
    let (required, optional, client) = match &roots {
        None => (None, None, None),
        Some(roots) => {
            let verifier = |optional: bool| {
                let b =
                    WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone());
                let b = if optional {
                    b.allow_unauthenticated()
                } else {
                    b
                };
                b.build().map_err(|e| TlsError::Ca(e.to_string()))
            };
            let required = server(verifier(false)?)?;
            let optional = server(verifier(true)?)?;
            let (client_chain, client_key) =
                if settings.client_cert_file.is_empty() || settings.client_key_file.is_empty() {
                    (chain.clone(), key.clone_key())
                } else {
                    (
                        certificates(&settings.client_cert_file)?,
                        private_key(&settings.client_key_file)?,
                    )
                };
            let client = ClientConfig::builder_with_provider(provider.clone())
                .with_protocol_versions(&versions)
                .map_err(rustls_err)?
                .with_root_certificates(roots.clone())
                .with_client_auth_cert(client_chain.clone(), client_key.clone_key())
                .map_err(rustls_err)?;
            let chain_only = rustls::client::WebPkiServerVerifier::builder_with_provider(
                roots.clone(),
                provider.clone(),
            )
            .build()
            .map_err(|e| TlsError::Ca(e.to_string()))?;
            let cluster_client = ClientConfig::builder_with_provider(provider.clone())
                .with_protocol_versions(&versions)
                .map_err(rustls_err)?
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(ChainOnly(chain_only)))
                .with_client_auth_cert(client_chain, client_key)
                .map_err(rustls_err)?;
            (
                Some(required),
                Some(optional),
                Some((Arc::new(client), Arc::new(cluster_client))),
            )
        }
    };
    let (client, cluster_client) = match client {
        Some((c, cc)) => (Some(c), Some(cc)),
        None => (None, None),
    };
    Ok(Contexts {
        no_auth,
        required,
        optional,
        client,
        cluster_client,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocols_follow_redis_parsing() {
        assert_eq!(protocols("").map(|v| v.len()).ok(), Some(2));
        assert_eq!(protocols("TLSv1.2").map(|v| v.len()).ok(), Some(1));
        assert_eq!(protocols("tlsv1.3  TLSV1.2").map(|v| v.len()).ok(), Some(2));
        assert!(matches!(protocols("SSLv3"), Err(TlsError::BadProtocols)));
        assert!(matches!(
            protocols("TLSv1.1 TLSv1.2"),
            Err(TlsError::UnsupportedProtocol(_))
        ));
    }

    #[test]
    fn ciphersuites_take_openssl_names_in_preference_order() {
        let p =
            provider("TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_GCM_SHA256").expect("valid suites");
        let tls13: Vec<_> = p
            .cipher_suites
            .iter()
            .filter(|s| s.version() == &rustls::version::TLS13)
            .map(|s| s.suite())
            .collect();
        assert_eq!(
            tls13,
            vec![
                rustls::CipherSuite::TLS13_CHACHA20_POLY1305_SHA256,
                rustls::CipherSuite::TLS13_AES_128_GCM_SHA256
            ]
        );
        // TLS 1.2 suites are kept.
        assert!(p
            .cipher_suites
            .iter()
            .any(|s| s.version() == &rustls::version::TLS12));
        assert!(matches!(
            provider("TLS_AES_128_CCM_SHA256"),
            Err(TlsError::Ciphersuites(_))
        ));
    }

    /// Writes a CA and a certificate for 127.0.0.1/localhost it signed (usable as server
    /// and client) into `dir`; returns the settings naming them.
    fn certificates_in(dir: &Path) -> TlsSettings {
        use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
        let ca_key = KeyPair::generate().expect("ca key");
        let mut ca = CertificateParams::new(Vec::<String>::new()).expect("ca params");
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = ca.self_signed(&ca_key).expect("ca");
        let key = KeyPair::generate().expect("key");
        let leaf = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".into()])
            .expect("params")
            .signed_by(&key, &ca, &ca_key)
            .expect("leaf");
        std::fs::create_dir_all(dir).expect("dir");
        std::fs::write(dir.join("ca.crt"), ca.pem()).expect("write");
        std::fs::write(dir.join("node.crt"), leaf.pem()).expect("write");
        std::fs::write(dir.join("node.key"), key.serialize_pem()).expect("write");
        let path = |n: &str| dir.join(n).to_string_lossy().into_owned();
        TlsSettings {
            cluster: true,
            cert_file: path("node.crt"),
            key_file: path("node.key"),
            ca_cert_dir: dir.to_string_lossy().into_owned(),
            ..TlsSettings::default()
        }
    }

    #[test]
    fn outgoing_links_authenticate_to_a_node_that_requires_client_certificates() {
        let dir = std::env::temp_dir().join(format!("rill-tls-unit-{}", std::process::id()));
        let settings = certificates_in(&dir);
        let context = TlsContext::default();
        let built = context.configure(&settings);
        let _ = std::fs::remove_dir_all(&dir);
        built.expect("configure");
        // The client side a cluster or replication link would use, against the server side
        // of another node with tls-auth-clients yes, in memory.
        let client_config = context.client_config().expect("client config");
        let server_config = context
            .server_config(TlsAuthClients::Yes)
            .expect("server config");
        let name = rustls::pki_types::ServerName::try_from("127.0.0.1").expect("name");
        let mut client = rustls::ClientConnection::new(client_config, name).expect("client");
        let mut server = rustls::ServerConnection::new(server_config).expect("server");
        for _ in 0..10 {
            let mut wire = Vec::new();
            while client.wants_write() {
                client.write_tls(&mut wire).expect("client write");
            }
            let mut rd = &wire[..];
            while !rd.is_empty() {
                server.read_tls(&mut rd).expect("server read");
            }
            server
                .process_new_packets()
                .expect("server accepts the link");
            let mut wire = Vec::new();
            while server.wants_write() {
                server.write_tls(&mut wire).expect("server write");
            }
            let mut rd = &wire[..];
            while !rd.is_empty() {
                client.read_tls(&mut rd).expect("client read");
            }
            client
                .process_new_packets()
                .expect("client accepts the node");
            if !client.is_handshaking() && !server.is_handshaking() {
                break;
            }
        }
        assert!(!server.is_handshaking());
        assert!(server
            .peer_certificates()
            .is_some_and(|chain| !chain.is_empty()));
    }

    #[test]
    fn missing_files_are_named_as_redis_logs_them() {
        let mut s = TlsSettings {
            port: 6380,
            ..TlsSettings::default()
        };
        assert_eq!(
            build(&s).err().map(|e| e.to_string()).as_deref(),
            Some("No tls-cert-file configured!")
        );
        s.cert_file = "/nonexistent/cert.pem".into();
        s.key_file = "/nonexistent/key.pem".into();
        assert_eq!(
            build(&s).err().map(|e| e.to_string()).as_deref(),
            Some("Either tls-ca-cert-file or tls-ca-cert-dir must be specified when tls-cluster, tls-replication or tls-auth-clients are enabled!")
        );
        s.auth_clients = TlsAuthClients::No;
        assert_eq!(
            build(&s).err().map(|e| e.to_string()).as_deref(),
            Some("Failed to load certificate: /nonexistent/cert.pem: No such file or directory")
        );
    }
}
