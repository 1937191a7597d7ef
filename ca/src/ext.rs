//! X.509 extensions rcgen does not build itself, encoded here in DER: Authority Information
//! Access (RFC 5280 §4.2.2.1), id-pkix-ocsp-nocheck (RFC 6960 §4.2.2.2.1), subject
//! alternative names with the HardwareModuleName form (RFC 4108 §5), and name constraints
//! with every name form (RFC 5280 §4.2.1.10).

use std::net::IpAddr;

use rcgen::CustomExtension;

use kizuna_core::der;

use crate::names::{Cidr, NameConstraints, San};

const ID_PE_AUTHORITY_INFO_ACCESS: [u64; 9] = [1, 3, 6, 1, 5, 5, 7, 1, 1];
const ID_AD_OCSP: [u64; 9] = [1, 3, 6, 1, 5, 5, 7, 48, 1];
const ID_AD_CA_ISSUERS: [u64; 9] = [1, 3, 6, 1, 5, 5, 7, 48, 2];
const ID_PKIX_OCSP_NOCHECK: [u64; 10] = [1, 3, 6, 1, 5, 5, 7, 48, 1, 5];
const ID_CE_NAME_CONSTRAINTS: [u64; 4] = [2, 5, 29, 30];
const ID_CE_CERTIFICATE_POLICIES: [u64; 4] = [2, 5, 29, 32];
const ID_CE_SUBJECT_ALT_NAME: [u64; 4] = [2, 5, 29, 17];
const ID_ON_HARDWARE_MODULE_NAME: [u64; 9] = [1, 3, 6, 1, 5, 5, 7, 8, 4];
/// anyPolicy (RFC 5280 §4.2.1.4), for issuing CA certificates.
pub const ANY_POLICY: &str = "2.5.29.32.0";

/// GeneralName tags (IMPLICIT, context-specific).
const OTHER_NAME: u8 = 0;
const RFC822_NAME: u8 = 1;
const DNS_NAME: u8 = 2;
const URI: u8 = 6;
const IP_ADDRESS: u8 = 7;

/// Where relying parties find the issuer's certificate and its OCSP responder.
pub fn authority_info_access(ocsp_url: Option<&str>, ca_issuers_url: &str) -> CustomExtension {
    let mut descriptions = Vec::new();
    if let Some(ocsp) = ocsp_url {
        descriptions.push(der::sequence(&[
            &der::oid(&der::oid_content(&ID_AD_OCSP)),
            &der::context(URI, false, ocsp.as_bytes()),
        ]));
    }
    descriptions.push(der::sequence(&[
        &der::oid(&der::oid_content(&ID_AD_CA_ISSUERS)),
        &der::context(URI, false, ca_issuers_url.as_bytes()),
    ]));
    let parts: Vec<&[u8]> = descriptions.iter().map(Vec::as_slice).collect();
    CustomExtension::from_oid_content(&ID_PE_AUTHORITY_INFO_ACCESS, der::sequence(&parts))
}

/// subjectAltName (RFC 5280 §4.2.1.6) with every name form Kizuna certifies; critical when
/// the subject is empty, as the RFC requires. None for no names (the extension must not be
/// empty).
pub fn subject_alt_name(sans: &[San], critical: bool) -> Result<Option<CustomExtension>, String> {
    if sans.is_empty() {
        return Ok(None);
    }
    let ia5 = |text: &str| {
        if text.is_ascii() {
            Ok(text.as_bytes().to_vec())
        } else {
            Err(format!("{text:?} is not ASCII"))
        }
    };
    let mut names = Vec::new();
    for san in sans {
        names.extend(match san {
            San::Dns(d) => der::context(DNS_NAME, false, &ia5(d)?),
            San::Uri(u) => der::context(URI, false, &ia5(u)?),
            San::Email(e) => der::context(RFC822_NAME, false, &ia5(e)?),
            San::Ip(IpAddr::V4(ip)) => der::context(IP_ADDRESS, false, &ip.octets()),
            San::Ip(IpAddr::V6(ip)) => der::context(IP_ADDRESS, false, &ip.octets()),
            San::HardwareModule { hw_type, serial } => {
                let arcs: Vec<u64> = hw_type.split('.').filter_map(|a| a.parse().ok()).collect();
                let serial: Vec<u8> = (0..serial.len() / 2)
                    .filter_map(|i| u8::from_str_radix(&serial[2 * i..2 * i + 2], 16).ok())
                    .collect();
                let value = der::sequence(&[
                    &der::oid(&der::oid_content(&arcs)),
                    &der::octet_string(&serial),
                ]);
                let type_id = der::oid(&der::oid_content(&ID_ON_HARDWARE_MODULE_NAME));
                // otherName [0] { type-id, value [0] EXPLICIT }
                der::context(
                    OTHER_NAME,
                    true,
                    &[type_id, der::context(0, true, &value)].concat(),
                )
            }
        });
    }
    let mut extension =
        CustomExtension::from_oid_content(&ID_CE_SUBJECT_ALT_NAME, der::tlv(0x30, &names));
    extension.set_criticality(critical);
    Ok(Some(extension))
}

/// certificatePolicies with the given policy OIDs (dotted), no qualifiers.
pub fn certificate_policies(oids: &[String]) -> Option<CustomExtension> {
    let infos: Vec<Vec<u8>> = oids
        .iter()
        .map(|oid| {
            let arcs: Vec<u64> = oid.split('.').filter_map(|a| a.parse().ok()).collect();
            der::sequence(&[&der::oid(&der::oid_content(&arcs))])
        })
        .collect();
    if infos.is_empty() {
        return None;
    }
    let parts: Vec<&[u8]> = infos.iter().map(Vec::as_slice).collect();
    Some(CustomExtension::from_oid_content(
        &ID_CE_CERTIFICATE_POLICIES,
        der::sequence(&parts),
    ))
}

/// Tells relying parties not to check the OCSP signer's own revocation.
pub fn ocsp_nocheck() -> CustomExtension {
    CustomExtension::from_oid_content(&ID_PKIX_OCSP_NOCHECK, der::null())
}

fn subtrees(dns: &[String], ip: &[String], uri: &[String], email: &[String]) -> Vec<u8> {
    let mut trees: Vec<Vec<u8>> = Vec::new();
    for d in dns {
        trees.push(der::sequence(&[&der::context(
            DNS_NAME,
            false,
            d.as_bytes(),
        )]));
    }
    for c in ip.iter().filter_map(|c| c.parse::<Cidr>().ok()) {
        trees.push(der::sequence(&[&der::context(
            IP_ADDRESS,
            false,
            &c.constraint_bytes(),
        )]));
    }
    for u in uri {
        trees.push(der::sequence(&[&der::context(URI, false, u.as_bytes())]));
    }
    for e in email {
        trees.push(der::sequence(&[&der::context(
            RFC822_NAME,
            false,
            e.as_bytes(),
        )]));
    }
    trees.concat()
}

/// The name constraints extension (critical), or `None` when there are none.
pub fn name_constraints(nc: &NameConstraints) -> Option<CustomExtension> {
    if nc.is_empty() {
        return None;
    }
    let permitted = subtrees(
        &nc.permitted_dns,
        &nc.permitted_ip,
        &nc.permitted_uri,
        &nc.permitted_email,
    );
    let excluded = subtrees(
        &nc.excluded_dns,
        &nc.excluded_ip,
        &nc.excluded_uri,
        &nc.excluded_email,
    );
    let mut content = Vec::new();
    if !permitted.is_empty() {
        content.extend(der::context(0, true, &permitted));
    }
    if !excluded.is_empty() {
        content.extend(der::context(1, true, &excluded));
    }
    let mut extension =
        CustomExtension::from_oid_content(&ID_CE_NAME_CONSTRAINTS, der::tlv(0x30, &content));
    extension.set_criticality(true);
    Some(extension)
}

/// The name constraints a CA certificate carries (the extension's DER value), read back into
/// the form [`name_constraints`] writes. Name forms Kizuna does not issue (directory names,
/// other names) are not kept: they cannot match any name Kizuna certifies.
pub fn read_name_constraints(value: &[u8]) -> Result<NameConstraints, String> {
    use x509_cert::der::Decode;
    use x509_cert::ext::pkix::constraints::name::{GeneralSubtrees, NameConstraints as Nc};
    use x509_cert::ext::pkix::name::GeneralName;
    let parsed = Nc::from_der(value).map_err(|e| format!("nameConstraints: {e}"))?;
    let mut out = NameConstraints::default();
    let read = |trees: Option<GeneralSubtrees>,
                dns: &mut Vec<String>,
                ip: &mut Vec<String>,
                uri: &mut Vec<String>,
                email: &mut Vec<String>|
     -> Result<(), String> {
        for tree in trees.unwrap_or_default() {
            match tree.base {
                GeneralName::DnsName(d) => dns.push(d.to_string()),
                GeneralName::UniformResourceIdentifier(u) => uri.push(u.to_string()),
                GeneralName::Rfc822Name(e) => email.push(e.to_string()),
                GeneralName::IpAddress(bytes) => {
                    ip.push(Cidr::from_constraint_bytes(bytes.as_bytes())?.to_string())
                }
                _ => {}
            }
        }
        Ok(())
    };
    read(
        parsed.permitted_subtrees,
        &mut out.permitted_dns,
        &mut out.permitted_ip,
        &mut out.permitted_uri,
        &mut out.permitted_email,
    )?;
    read(
        parsed.excluded_subtrees,
        &mut out.excluded_dns,
        &mut out.excluded_ip,
        &mut out.excluded_uri,
        &mut out.excluded_email,
    )?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_constraints_read_back_as_written() {
        let nc = NameConstraints {
            permitted_dns: vec!["city.example".into()],
            excluded_dns: vec!["secret.city.example".into()],
            permitted_ip: vec!["10.0.0.0/8".into(), "2001:db8::/32".into()],
            excluded_uri: vec![".evil.example".into()],
            permitted_email: vec!["city.example".into()],
            ..Default::default()
        };
        let ext = name_constraints(&nc).unwrap();
        assert_eq!(read_name_constraints(ext.content()).unwrap(), nc);
        assert!(read_name_constraints(&[0x30, 0x03, 0x01]).is_err());
    }

    #[test]
    fn aia_lists_ocsp_then_ca_issuers() {
        let ext = authority_info_access(Some("http://x/ocsp"), "http://x/ca.der");
        let content = ext.content();
        let (body, rest) = der::read_tlv(content, 0x30).unwrap();
        assert!(rest.is_empty());
        let (first, rest) = der::read_tlv(body, 0x30).unwrap();
        let (oid, location) = der::read_tlv(first, 0x06).unwrap();
        assert_eq!(oid, der::oid_content(&ID_AD_OCSP).as_slice());
        assert_eq!(
            location,
            der::context(URI, false, b"http://x/ocsp").as_slice()
        );
        assert!(der::read_tlv(rest, 0x30).is_some());
    }

    #[test]
    fn name_constraints_are_critical_and_skip_when_empty() {
        assert!(name_constraints(&NameConstraints::default()).is_none());
        let nc = NameConstraints {
            permitted_dns: vec!["city.example".into()],
            excluded_ip: vec!["10.0.0.0/8".into()],
            ..Default::default()
        };
        let ext = name_constraints(&nc).unwrap();
        assert!(ext.criticality());
        let (body, _) = der::read_tlv(ext.content(), 0x30).unwrap();
        assert_eq!(body[0], 0xa0, "permitted subtrees first");
    }
}
