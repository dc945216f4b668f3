//! Test certificates made with rcgen as each test runs (never committed keys): CAs, and
//! leaf certificates signed by them, written as PEM files.

use std::path::Path;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};

/// A self-signed CA named `name`.
pub fn ca(name: &str) -> (rcgen::Certificate, KeyPair) {
    let key = KeyPair::generate().expect("ca key");
    let mut p = CertificateParams::new(Vec::<String>::new()).expect("ca params");
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.distinguished_name.push(DnType::CommonName, name);
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let cert = p.self_signed(&key).expect("ca cert");
    (cert, key)
}

/// A certificate for `names` (DNS names or IP addresses) signed by `issuer`, usable for
/// `usages`, written to `dir` as `<file>.crt` and `<file>.key`.
pub fn leaf(
    dir: &Path,
    file: &str,
    names: &[&str],
    issuer: &(rcgen::Certificate, KeyPair),
    usages: Vec<ExtendedKeyUsagePurpose>,
) {
    let key = KeyPair::generate().expect("key");
    let mut p = CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
        .expect("params");
    p.distinguished_name.push(DnType::CommonName, file);
    p.extended_key_usages = usages;
    let cert = p.signed_by(&key, &issuer.0, &issuer.1).expect("sign");
    std::fs::write(dir.join(format!("{file}.crt")), cert.pem()).expect("write");
    std::fs::write(dir.join(format!("{file}.key")), key.serialize_pem()).expect("write");
}
