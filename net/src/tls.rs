//! The consortium PKI: certificates issued by the consortium CA, and the rustls configurations
//! that admit only genesis nodes.
//!
//! A node's TLS key *is* its engine Ed25519 key, so the identity proven in the handshake is the
//! identity that signs PBFT messages. Both directions of every handshake are checked the same
//! way: the chain must verify to the consortium CA (rustls's WebPKI verifiers over a root store
//! holding only that CA), and then the leaf's Ed25519 key must belong to a node of the genesis.
//! Anything else fails the handshake with an error that says why.

use engine::crypto::{PublicKey, SigningKey};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose, PKCS_ED25519,
};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{DigitallySignedStruct, DistinguishedName as TlsDistinguishedName, RootCertStore, SignatureScheme};
use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;

/// The ALPN protocol of medchain's peer-to-peer QUIC connections.
pub const ALPN: &[u8] = b"medchain/1";

/// The fixed PKCS#8 v1 prefix of an Ed25519 private key (RFC 8410): a 32-byte seed follows.
const ED25519_PKCS8_PREFIX: [u8; 16] =
    [0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20];

/// Why a certificate could not be issued, loaded, or a TLS configuration built.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// rcgen refused to build or sign a certificate.
    #[error("certificate generation: {0}")]
    Generate(#[from] rcgen::Error),
    /// A PEM file holds no certificate or is not PEM.
    #[error("{what}: not a PEM certificate: {reason}")]
    Pem {
        /// Which certificate.
        what: &'static str,
        /// Why it did not parse.
        reason: String,
    },
    /// A certificate does not carry an Ed25519 key.
    #[error("{what}: {reason}")]
    Certificate {
        /// Which certificate.
        what: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// A certificate's key is not the key it should be (e.g. a node certificate for another key).
    #[error("{what}: certificate key {found} is not the expected key {expected}")]
    KeyMismatch {
        /// Which certificate.
        what: &'static str,
        /// The key in the certificate.
        found: PublicKey,
        /// The key that should be there.
        expected: PublicKey,
    },
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
    /// The WebPKI verifier could not be built (e.g. the CA certificate is unusable as a root).
    #[error("TLS verifier: {0}")]
    Verifier(String),
}

/// The PKCS#8 v1 DER of an Ed25519 key, as rcgen and rustls load it.
fn pkcs8_der(key: &SigningKey) -> Vec<u8> {
    let mut der = ED25519_PKCS8_PREFIX.to_vec();
    der.extend_from_slice(&key.seed());
    der
}

fn rcgen_key(key: &SigningKey) -> Result<KeyPair, TlsError> {
    let der = pkcs8_der(key);
    Ok(KeyPair::from_pkcs8_der_and_sign_algo(&PrivatePkcs8KeyDer::from(der), &PKCS_ED25519)?)
}

/// The self-signed consortium CA certificate (PEM) for `ca_key` on chain `chain_id`.
pub fn ca_certificate(ca_key: &SigningKey, chain_id: &engine::crypto::ChainId) -> Result<String, TlsError> {
    let key = rcgen_key(ca_key)?;
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, format!("medchain consortium CA {chain_id}"));
    dn.push(DnType::OrganizationName, chain_id.as_str());
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    Ok(params.self_signed(&key)?.pem())
}

/// A node certificate (PEM) for `node_key`, issued by the CA whose certificate is `ca_cert_pem`
/// and whose key is `ca_key`. Its subject alternative names are `node_name`, `localhost` and
/// `127.0.0.1`; it serves both as a server and as a client certificate.
pub fn node_certificate(
    ca_key: &SigningKey,
    ca_cert_pem: &str,
    node_key: &SigningKey,
    node_name: &str,
) -> Result<String, TlsError> {
    let ca_der = parse_certificate_pem(ca_cert_pem, "CA certificate")?;
    let found = ed25519_key_of(&ca_der).map_err(|reason| TlsError::Certificate { what: "CA certificate", reason })?;
    if found != ca_key.public() {
        return Err(TlsError::KeyMismatch { what: "CA certificate", found, expected: ca_key.public() });
    }
    let ca_rcgen_key = rcgen_key(ca_key)?;
    // Only the issuer's name, key identifier method and key usages are taken from the parsed CA;
    // re-signing it yields a `Certificate` value rcgen can issue from.
    let issuer = CertificateParams::from_ca_cert_pem(ca_cert_pem)?.self_signed(&ca_rcgen_key)?;

    let mut names = vec![node_name.to_string(), "localhost".to_string(), "127.0.0.1".to_string()];
    names.dedup();
    let mut params = CertificateParams::new(names)?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, node_name);
    params.distinguished_name = dn;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
    params.use_authority_key_identifier_extension = true;
    let node = rcgen_key(node_key)?;
    Ok(params.signed_by(&node, &issuer, &ca_rcgen_key)?.pem())
}

/// Parses the first certificate of a PEM text.
pub fn parse_certificate_pem(pem: &str, what: &'static str) -> Result<CertificateDer<'static>, TlsError> {
    CertificateDer::from_pem_slice(pem.as_bytes()).map_err(|e| TlsError::Pem { what, reason: e.to_string() })
}

/// The Ed25519 public key of a DER certificate, or why there is none.
pub fn ed25519_key_of(der: &[u8]) -> Result<PublicKey, String> {
    let (rest, cert) =
        x509_parser::parse_x509_certificate(der).map_err(|e| format!("certificate does not parse: {e}"))?;
    if !rest.is_empty() {
        return Err(format!("{} trailing bytes after the certificate", rest.len()));
    }
    let spki = cert.public_key();
    if spki.algorithm.algorithm != x509_parser::oid_registry::OID_SIG_ED25519 {
        return Err(format!("certificate key algorithm {} is not Ed25519", spki.algorithm.algorithm));
    }
    let bytes: [u8; 32] =
        spki.subject_public_key.data.as_ref().try_into().map_err(|_| "Ed25519 key is not 32 bytes".to_string())?;
    Ok(PublicKey(bytes))
}

/// Why a peer's certificate was refused after its chain verified.
#[derive(Debug)]
struct NotAConsortiumNode(String);

impl fmt::Display for NotAConsortiumNode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for NotAConsortiumNode {}

fn refuse(reason: String) -> rustls::Error {
    rustls::Error::InvalidCertificate(rustls::CertificateError::Other(rustls::OtherError(Arc::new(
        NotAConsortiumNode(reason),
    ))))
}

/// The keys allowed to connect: the genesis nodes.
#[derive(Clone, Debug)]
pub struct AllowedKeys(Arc<HashSet<PublicKey>>);

impl AllowedKeys {
    /// Allows exactly these keys.
    pub fn new(keys: impl IntoIterator<Item = PublicKey>) -> Self {
        AllowedKeys(Arc::new(keys.into_iter().collect()))
    }

    fn check(&self, end_entity: &CertificateDer<'_>) -> Result<(), rustls::Error> {
        let key = ed25519_key_of(end_entity).map_err(|e| refuse(format!("peer certificate refused: {e}")))?;
        if !self.0.contains(&key) {
            return Err(refuse(format!(
                "peer certificate key {} is not the key of any node in the genesis",
                key.short()
            )));
        }
        Ok(())
    }
}

/// Checks a server's certificate: CA chain and server name (WebPKI), then a genesis key.
#[derive(Debug)]
struct ConsortiumServerVerifier {
    inner: Arc<WebPkiServerVerifier>,
    allowed: AllowedKeys,
}

impl ServerCertVerifier for ConsortiumServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.inner.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)?;
        self.allowed.check(end_entity)?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// Checks a client's certificate: CA chain (WebPKI), then a genesis key. Mandatory.
#[derive(Debug)]
struct ConsortiumClientVerifier {
    inner: Arc<dyn ClientCertVerifier>,
    allowed: AllowedKeys,
}

impl ClientCertVerifier for ConsortiumClientVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn root_hint_subjects(&self) -> &[TlsDistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.inner.verify_client_cert(end_entity, intermediates, now)?;
        self.allowed.check(end_entity)?;
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// A node's TLS identity and trust: everything needed to build both rustls configurations.
#[derive(Clone, Debug)]
pub struct TlsIdentity {
    /// The consortium CA certificate.
    pub ca_cert: CertificateDer<'static>,
    /// This node's certificate, issued by the CA for `key`.
    pub node_cert: CertificateDer<'static>,
    /// This node's key (its engine key).
    pub key: SigningKey,
    /// The keys allowed on the other end of a connection.
    pub allowed: AllowedKeys,
}

impl TlsIdentity {
    /// Loads an identity from PEM texts and checks that the node certificate carries `key`.
    pub fn from_pem(
        ca_cert_pem: &str,
        node_cert_pem: &str,
        key: SigningKey,
        allowed: AllowedKeys,
    ) -> Result<Self, TlsError> {
        let ca_cert = parse_certificate_pem(ca_cert_pem, "CA certificate")?;
        let node_cert = parse_certificate_pem(node_cert_pem, "node certificate")?;
        let found =
            ed25519_key_of(&node_cert).map_err(|reason| TlsError::Certificate { what: "node certificate", reason })?;
        if found != key.public() {
            return Err(TlsError::KeyMismatch { what: "node certificate", found, expected: key.public() });
        }
        Ok(TlsIdentity { ca_cert, node_cert, key, allowed })
    }

    fn provider() -> Arc<CryptoProvider> {
        Arc::new(rustls::crypto::ring::default_provider())
    }

    fn roots(&self) -> Result<Arc<RootCertStore>, TlsError> {
        let mut roots = RootCertStore::empty();
        roots.add(self.ca_cert.clone()).map_err(TlsError::Rustls)?;
        Ok(Arc::new(roots))
    }

    fn private_key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(pkcs8_der(&self.key)))
    }

    /// The configuration for dialing: presents our certificate, admits only genesis servers.
    pub fn client_config(&self) -> Result<rustls::ClientConfig, TlsError> {
        let provider = Self::provider();
        let inner = WebPkiServerVerifier::builder_with_provider(self.roots()?, provider.clone())
            .build()
            .map_err(|e| TlsError::Verifier(e.to_string()))?;
        let verifier = Arc::new(ConsortiumServerVerifier { inner, allowed: self.allowed.clone() });
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_client_auth_cert(vec![self.node_cert.clone()], self.private_key())?;
        config.alpn_protocols = vec![ALPN.to_vec()];
        Ok(config)
    }

    /// The configuration for listening: requires a client certificate of a genesis node.
    pub fn server_config(&self) -> Result<rustls::ServerConfig, TlsError> {
        let provider = Self::provider();
        let inner = WebPkiClientVerifier::builder_with_provider(self.roots()?, provider.clone())
            .build()
            .map_err(|e| TlsError::Verifier(e.to_string()))?;
        let verifier = Arc::new(ConsortiumClientVerifier { inner, allowed: self.allowed.clone() });
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_client_cert_verifier(verifier)
            .with_single_cert(vec![self.node_cert.clone()], self.private_key())?;
        config.alpn_protocols = vec![ALPN.to_vec()];
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use engine::crypto::ChainId;

    fn chain() -> ChainId {
        ChainId::new("test-chain").unwrap()
    }

    #[test]
    fn node_certificate_carries_the_engine_key() {
        let ca = SigningKey::from_seed([1; 32]);
        let node = SigningKey::from_seed([2; 32]);
        let ca_pem = ca_certificate(&ca, &chain()).unwrap();
        let node_pem = node_certificate(&ca, &ca_pem, &node, "node0").unwrap();
        let der = parse_certificate_pem(&node_pem, "node").unwrap();
        assert_eq!(ed25519_key_of(&der).unwrap(), node.public());
        let ca_der = parse_certificate_pem(&ca_pem, "ca").unwrap();
        assert_eq!(ed25519_key_of(&ca_der).unwrap(), ca.public());
        let id = TlsIdentity::from_pem(&ca_pem, &node_pem, node.clone(), AllowedKeys::new([node.public()])).unwrap();
        id.client_config().unwrap();
        id.server_config().unwrap();
    }

    #[test]
    fn issuing_with_the_wrong_ca_key_is_refused() {
        let ca = SigningKey::from_seed([1; 32]);
        let other = SigningKey::from_seed([3; 32]);
        let ca_pem = ca_certificate(&ca, &chain()).unwrap();
        let err = node_certificate(&other, &ca_pem, &SigningKey::from_seed([2; 32]), "node0").unwrap_err();
        assert!(matches!(err, TlsError::KeyMismatch { .. }), "{err}");
    }

    #[test]
    fn identity_refuses_a_certificate_for_another_key() {
        let ca = SigningKey::from_seed([1; 32]);
        let ca_pem = ca_certificate(&ca, &chain()).unwrap();
        let node_pem = node_certificate(&ca, &ca_pem, &SigningKey::from_seed([2; 32]), "node0").unwrap();
        let err = TlsIdentity::from_pem(&ca_pem, &node_pem, SigningKey::from_seed([4; 32]), AllowedKeys::new([]))
            .unwrap_err();
        assert!(matches!(err, TlsError::KeyMismatch { .. }), "{err}");
    }

    #[test]
    fn garbage_is_not_a_certificate() {
        assert!(parse_certificate_pem("hello", "x").is_err());
        assert!(ed25519_key_of(b"\x30\x03\x02\x01\x00").is_err());
    }
}
