//! A certificate's fields as readable text for the console (RFC 5280 §4.1, and the
//! extensions Kizuna's profiles write, §4.2).

use x509_cert::der::{Decode, Encode};
use x509_cert::ext::pkix::name::{DistributionPointName, GeneralName};
use x509_cert::ext::pkix::{
    AuthorityInfoAccessSyntax, BasicConstraints, CrlDistributionPoints, ExtendedKeyUsage, KeyUsage,
    SubjectAltName,
};

use kizuna_core::web::Lang;

use crate::messages::Msg;

/// A field's name in Japanese and English.
pub type Label = (&'static str, &'static str);

/// A short name for the object identifiers a Kizuna certificate carries.
fn oid_name(oid: &str) -> String {
    let name = match oid {
        "1.2.840.10045.2.1" => "ecPublicKey",
        "1.2.840.10045.3.1.7" => "P-256",
        "1.3.132.0.34" => "P-384",
        "1.3.101.112" => "Ed25519",
        "1.2.840.113549.1.1.1" => "rsaEncryption",
        "1.2.840.10045.4.3.2" => "ecdsa-with-SHA256",
        "1.2.840.10045.4.3.3" => "ecdsa-with-SHA384",
        "1.2.840.113549.1.1.11" => "sha256WithRSAEncryption",
        "1.3.6.1.5.5.7.3.1" => "serverAuth",
        "1.3.6.1.5.5.7.3.2" => "clientAuth",
        "1.3.6.1.5.5.7.3.9" => "OCSPSigning",
        "1.3.6.1.5.5.7.48.1" => "OCSP",
        "1.3.6.1.5.5.7.48.2" => "caIssuers",
        "2.5.29.17" => "subjectAltName",
        "2.5.29.15" => "keyUsage",
        "2.5.29.37" => "extKeyUsage",
        "2.5.29.19" => "basicConstraints",
        "2.5.29.14" => "subjectKeyIdentifier",
        "2.5.29.35" => "authorityKeyIdentifier",
        "2.5.29.31" => "cRLDistributionPoints",
        "1.3.6.1.5.5.7.1.1" => "authorityInfoAccess",
        "2.5.29.32" => "certificatePolicies",
        _ => return oid.to_string(),
    };
    name.to_string()
}

fn general_name(n: &GeneralName) -> String {
    match n {
        GeneralName::DnsName(d) => format!("DNS:{}", d.as_str()),
        GeneralName::UniformResourceIdentifier(u) => format!("URI:{}", u.as_str()),
        GeneralName::Rfc822Name(e) => format!("email:{}", e.as_str()),
        GeneralName::IpAddress(ip) => match ip.as_bytes() {
            [a, b, c, d] => format!("IP:{a}.{b}.{c}.{d}"),
            bytes => match <[u8; 16]>::try_from(bytes) {
                Ok(v6) => format!("IP:{}", std::net::Ipv6Addr::from(v6)),
                Err(_) => format!("IP:{}", kizuna_core::secret::hex(bytes)),
            },
        },
        GeneralName::DirectoryName(dn) => format!("DirName:{dn}"),
        other => format!("{other:?}"),
    }
}

/// An extension's value as text; hex when it is not one this function knows.
fn extension_value(oid: &str, der: &[u8]) -> String {
    let list = |v: Vec<String>| v.join(", ");
    let decoded = match oid {
        "2.5.29.17" => SubjectAltName::from_der(der)
            .ok()
            .map(|s| list(s.0.iter().map(general_name).collect())),
        "2.5.29.15" => KeyUsage::from_der(der)
            .ok()
            .map(|k| list(k.0.into_iter().map(|u| format!("{u:?}")).collect())),
        "2.5.29.37" => ExtendedKeyUsage::from_der(der)
            .ok()
            .map(|e| list(e.0.iter().map(|o| oid_name(&o.to_string())).collect())),
        "2.5.29.19" => BasicConstraints::from_der(der)
            .ok()
            .map(|b| match b.path_len_constraint {
                Some(n) => format!("CA:{}, pathlen:{n}", b.ca),
                None => format!("CA:{}", b.ca),
            }),
        "1.3.6.1.5.5.7.1.1" => AuthorityInfoAccessSyntax::from_der(der).ok().map(|a| {
            list(
                a.0.iter()
                    .map(|d| {
                        format!(
                            "{} {}",
                            oid_name(&d.access_method.to_string()),
                            general_name(&d.access_location)
                        )
                    })
                    .collect(),
            )
        }),
        "2.5.29.31" => CrlDistributionPoints::from_der(der).ok().map(|c| {
            list(
                c.0.iter()
                    .filter_map(|p| match &p.distribution_point {
                        Some(DistributionPointName::FullName(names)) => {
                            Some(list(names.iter().map(general_name).collect()))
                        }
                        _ => None,
                    })
                    .collect(),
            )
        }),
        _ => None,
    };
    decoded.unwrap_or_else(|| kizuna_core::secret::hex(der))
}

/// The certificate's fields and extensions, in order; a certificate that cannot be parsed
/// says so in `lang`.
pub fn fields(der: &[u8], lang: Lang) -> Vec<(Label, String)> {
    let Ok(cert) = x509_cert::Certificate::from_der(der) else {
        return vec![(("解析", "Parsing"), Msg::CertificateUnparsable.render(lang))];
    };
    let tbs = cert.tbs_certificate();
    let spki = tbs.subject_public_key_info();
    let curve = spki
        .algorithm
        .parameters
        .as_ref()
        .and_then(|p| p.decode_as::<x509_cert::der::asn1::ObjectIdentifier>().ok())
        .map(|o| format!(" {}", oid_name(&o.to_string())))
        .unwrap_or_default();
    let mut out = vec![
        (("バージョン", "Version"), format!("{:?}", tbs.version())),
        (("シリアル", "Serial"), tbs.serial_number().to_string()),
        (
            ("署名アルゴリズム", "Signature algorithm"),
            oid_name(&tbs.signature().oid.to_string()),
        ),
        (("発行者", "Issuer"), tbs.issuer().to_string()),
        (("サブジェクト", "Subject"), tbs.subject().to_string()),
        (
            ("有効期間の開始", "Not before"),
            tbs.validity().not_before.to_string(),
        ),
        (
            ("有効期間の終了", "Not after"),
            tbs.validity().not_after.to_string(),
        ),
        (
            ("公開鍵", "Public key"),
            format!("{}{curve}", oid_name(&spki.algorithm.oid.to_string())),
        ),
        (
            ("SHA-256 フィンガープリント", "SHA-256 fingerprint"),
            kizuna_core::secret::hex(&kizuna_core::secret::sha256(
                &cert.to_der().unwrap_or_default(),
            )),
        ),
    ];
    for ext in tbs.extensions().into_iter().flatten() {
        let oid = ext.extn_id.to_string();
        let critical = if ext.critical { " (critical)" } else { "" };
        // Extension names are the RFC's in both languages, so they lead the value.
        out.push((
            ("拡張", "Extension"),
            format!(
                "{}{critical}: {}",
                oid_name(&oid),
                extension_value(&oid, ext.extn_value.as_bytes())
            ),
        ));
    }
    out
}
