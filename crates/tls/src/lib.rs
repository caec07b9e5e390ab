//! TLS for MedLedger's REST API and node-to-node forwarding.
//!
//! The consortium CA that binds keys to roles on chain also certifies the nodes' TLS keys: its
//! ed25519 key (the `ca_key` of the genesis file) signs a self-signed X.509 root, and each node's
//! certificate (an ECDSA P-256 key of its own, named for its API address) is issued under that
//! root. Clients and forwarding nodes trust that root and nothing else, so a node cannot be
//! impersonated by anyone holding a certificate from a public CA.
//!
//! Authentication of users stays with signed requests (see `medledger_types::auth`); TLS gives
//! the answers confidentiality and the client assurance that it talks to a consortium node.
//!
//! Every configuration uses the aws-lc-rs provider explicitly (other crates in a build may
//! enable another provider, and rustls then refuses to guess).

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType, PKCS_ECDSA_P256_SHA256, PKCS_ED25519,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

pub use rustls;

/// How long generated certificates are valid: ten years, like the genesis admin credentials.
pub const VALIDITY_YEARS: i32 = 10;

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// PKCS#8 (RFC 8410) of an ed25519 seed: the fixed prefix and the 32-byte seed.
fn ed25519_pkcs8(seed: &[u8; 32]) -> Vec<u8> {
    const PREFIX: [u8; 16] =
        [0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20];
    [PREFIX.as_slice(), seed].concat()
}

fn ca_key_pair(ca: &medledger_types::Keypair) -> Result<KeyPair, String> {
    let der = PrivatePkcs8KeyDer::from(ed25519_pkcs8(&ca.secret_bytes()));
    KeyPair::from_pkcs8_der_and_sign_algo(&der, &PKCS_ED25519).map_err(|e| format!("CA key: {e}"))
}

fn ca_params(chain_id: &str) -> Result<CertificateParams, String> {
    let mut p = CertificateParams::new(Vec::<String>::new()).map_err(|e| e.to_string())?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, format!("MedLedger consortium CA ({chain_id})"));
    dn.push(DnType::OrganizationName, "MedLedger consortium");
    p.distinguished_name = dn;
    p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    set_validity(&mut p);
    Ok(p)
}

/// Valid from January 1st of last year to [`VALIDITY_YEARS`] after this year.
fn set_validity(p: &mut CertificateParams) {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let year = 1970 + (secs / 31_556_952) as i32;
    p.not_before = rcgen::date_time_ymd(year - 1, 1, 1);
    p.not_after = rcgen::date_time_ymd(year + VALIDITY_YEARS, 1, 1);
}

/// The consortium's TLS root: a self-signed certificate of the CA's ed25519 key (PEM).
pub fn ca_certificate(ca: &medledger_types::Keypair, chain_id: &str) -> Result<String, String> {
    let key = ca_key_pair(ca)?;
    let cert = ca_params(chain_id)?.self_signed(&key).map_err(|e| format!("CA certificate: {e}"))?;
    Ok(cert.pem())
}

/// A node's certificate and its fresh ECDSA P-256 key (both PEM), issued by the CA for `names`:
/// IP addresses and DNS names the node's API is reached at.
pub fn node_certificate(
    ca: &medledger_types::Keypair,
    chain_id: &str,
    institution: &str,
    names: &[String],
) -> Result<(String, String), String> {
    let issuer = Issuer::new(ca_params(chain_id)?, ca_key_pair(ca)?);
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(|e| format!("node key: {e}"))?;
    let mut p = CertificateParams::new(Vec::<String>::new()).map_err(|e| e.to_string())?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, format!("{institution} MedLedger node"));
    dn.push(DnType::OrganizationName, institution);
    p.distinguished_name = dn;
    for n in names {
        let san = match n.parse::<IpAddr>() {
            Ok(ip) => SanType::IpAddress(ip),
            Err(_) => SanType::DnsName(n.clone().try_into().map_err(|e| format!("name `{n}`: {e}"))?),
        };
        p.subject_alt_names.push(san);
    }
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
    set_validity(&mut p);
    let cert = p.signed_by(&key, &issuer).map_err(|e| format!("node certificate: {e}"))?;
    Ok((cert.pem(), key.serialize_pem()))
}

fn read(path: &Path, what: &str) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("cannot read the {what} {}: {e}", path.display()))
}

fn certificates(pem: &[u8], what: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs: Vec<_> = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("the {what} is not PEM certificates: {e}"))?;
    if certs.is_empty() {
        return Err(format!("the {what} holds no certificate"));
    }
    Ok(certs)
}

/// A client configuration that trusts exactly the consortium root in `ca_pem` (PEM bytes).
pub fn client_config_from_pem(ca_pem: &[u8]) -> Result<Arc<rustls::ClientConfig>, String> {
    let mut roots = rustls::RootCertStore::empty();
    for c in certificates(ca_pem, "consortium CA certificate")? {
        roots.add(c).map_err(|e| format!("the consortium CA certificate is not usable: {e}"))?;
    }
    let cfg = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(cfg))
}

/// [`client_config_from_pem`] of the file at `ca_path`.
pub fn client_config(ca_path: &Path) -> Result<Arc<rustls::ClientConfig>, String> {
    client_config_from_pem(&read(ca_path, "consortium CA certificate")?)
}

/// A server configuration presenting the certificate chain at `cert_path` with the key at
/// `key_path` (PKCS#8 PEM).
pub fn server_config(cert_path: &Path, key_path: &Path) -> Result<Arc<rustls::ServerConfig>, String> {
    let chain = certificates(&read(cert_path, "TLS certificate")?, "TLS certificate")?;
    let key = PrivateKeyDer::from_pem_slice(&read(key_path, "TLS key")?)
        .map_err(|e| format!("the TLS key {} is not a PEM private key: {e}", key_path.display()))?;
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| format!("the TLS certificate and key do not go together: {e}"))?;
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::pki_types::ServerName;

    /// A handshake in memory between a node certificate issued by `issuer` and a client trusting
    /// `trusted`'s root.
    fn handshake(
        issuer: &medledger_types::Keypair,
        trusted: &medledger_types::Keypair,
        name: &str,
    ) -> Result<(), String> {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = node_certificate(issuer, "t", "hospital-a", &["127.0.0.1".into(), "localhost".into()])?;
        std::fs::write(dir.path().join("c.pem"), cert).unwrap();
        std::fs::write(dir.path().join("k.pem"), key).unwrap();
        let server = server_config(&dir.path().join("c.pem"), &dir.path().join("k.pem"))?;
        let client = client_config_from_pem(ca_certificate(trusted, "t")?.as_bytes())?;
        let mut c = rustls::ClientConnection::new(client, ServerName::try_from(name.to_string()).unwrap())
            .map_err(|e| e.to_string())?;
        let mut s = rustls::ServerConnection::new(server).map_err(|e| e.to_string())?;
        for _ in 0..10 {
            let mut buf = Vec::new();
            c.write_tls(&mut buf).map_err(|e| e.to_string())?;
            s.read_tls(&mut buf.as_slice()).map_err(|e| e.to_string())?;
            s.process_new_packets().map_err(|e| e.to_string())?;
            let mut buf = Vec::new();
            s.write_tls(&mut buf).map_err(|e| e.to_string())?;
            c.read_tls(&mut buf.as_slice()).map_err(|e| e.to_string())?;
            c.process_new_packets().map_err(|e| e.to_string())?;
            if !c.is_handshaking() && !s.is_handshaking() {
                return Ok(());
            }
        }
        Err("handshake did not finish".into())
    }

    #[test]
    fn a_node_certificate_from_the_consortium_ca_is_trusted_and_no_other_is() {
        let ca = medledger_types::Keypair::from_seed(1);
        let other = medledger_types::Keypair::from_seed(2);
        handshake(&ca, &ca, "127.0.0.1").unwrap();
        handshake(&ca, &ca, "localhost").unwrap();
        let err = handshake(&other, &ca, "127.0.0.1").unwrap_err();
        assert!(err.contains("certificate"), "{err}");
        let err = handshake(&ca, &ca, "node.example").unwrap_err();
        assert!(err.contains("certificate"), "{err}");
    }

    #[test]
    fn bad_files_get_specific_errors() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.pem");
        std::fs::write(&p, "not pem").unwrap();
        assert!(client_config(&p).unwrap_err().contains("no certificate"));
        assert!(client_config(&dir.path().join("missing.pem")).unwrap_err().contains("cannot read"));
        assert!(server_config(&p, &p).unwrap_err().contains("no certificate"));
    }
}
