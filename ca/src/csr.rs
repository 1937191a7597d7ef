//! PKCS#10 certification requests (RFC 2986): accepted as PEM, DER, or base64 DER (as EST
//! sends them), size-bounded, the key checked against what the caller allows, and verified —
//! the signature must check with the enclosed key (proof of possession) before anything else
//! in the request is looked at.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use x509_cert::der::Decode;
use x509_cert::ext::pkix::SubjectAltName;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::name::Name;
use x509_cert::request::CertReq;

use kizuna_core::der;

use crate::keys::{KeyError, KeyType, SubjectKey};
use crate::names::{ID_ON_HARDWARE_MODULE_NAME, San};

/// Larger requests are refused before parsing.
pub const MAX_CSR_BYTES: usize = 64 * 1024;
const EXTENSION_REQUEST: &str = "1.2.840.113549.1.9.14";
const SUBJECT_ALT_NAME: &str = "2.5.29.17";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CsrError {
    #[error("the certificate request is larger than {MAX_CSR_BYTES} bytes")]
    TooLarge,
    #[error("the certificate request is not PEM, DER or base64 DER")]
    Encoding,
    #[error("the certificate request is not a valid PKCS#10 structure: {0}")]
    Structure(String),
    #[error("{0}")]
    Key(#[from] KeyError),
    #[error("{0}")]
    KeyNotAllowed(String),
    #[error("the subject alternative names in the request are malformed: {0}")]
    Names(String),
}

/// A verified certification request.
#[derive(Debug, Clone)]
pub struct Csr {
    pub key: SubjectKey,
    pub subject: Name,
    /// Subject alternative names requested through the extensionRequest attribute.
    pub requested_sans: Vec<San>,
    /// Other requested extensions (OIDs), which are never copied into certificates.
    pub ignored_extensions: Vec<String>,
}

/// Finds the DER in whatever form the request came.
fn to_der(input: &[u8]) -> Result<Vec<u8>, CsrError> {
    if input.len() > MAX_CSR_BYTES {
        return Err(CsrError::TooLarge);
    }
    if input.first() == Some(&0x30) {
        return Ok(input.to_vec());
    }
    let text = std::str::from_utf8(input)
        .map_err(|_| CsrError::Encoding)?
        .trim();
    let body: String = if text.starts_with("-----BEGIN") {
        // The header is the whole first line; the footer is looked for only after it, so a
        // crafted `-----BEGIN CERTIFICATE REQUEST-----END…` cannot point before the body.
        let (header, rest) = text.split_once('\n').ok_or(CsrError::Encoding)?;
        if !matches!(
            header.trim_end(),
            "-----BEGIN CERTIFICATE REQUEST-----" | "-----BEGIN NEW CERTIFICATE REQUEST-----"
        ) {
            return Err(CsrError::Encoding);
        }
        let end = rest.find("-----END").ok_or(CsrError::Encoding)?;
        rest[..end].chars().filter(|c| !c.is_whitespace()).collect()
    } else {
        text.chars().filter(|c| !c.is_whitespace()).collect()
    };
    STANDARD.decode(body).map_err(|_| CsrError::Encoding)
}

/// The raw bytes (header included) of the first TLV inside `content`.
fn first_element(content: &[u8]) -> Option<&[u8]> {
    let (_, rest) = der::read_tlv(content, 0x30)?;
    Some(&content[..content.len() - rest.len()])
}

/// Parses a request whose key `allows_key` accepts (a profile's key rule), then verifies its
/// signature.
pub fn parse(
    input: &[u8],
    allows_key: impl FnOnce(KeyType) -> Result<(), String>,
) -> Result<Csr, CsrError> {
    let der_bytes = to_der(input)?;
    let request = CertReq::from_der(&der_bytes).map_err(|e| CsrError::Structure(e.to_string()))?;
    // Verify over the request-info bytes exactly as received.
    let (outer, _) =
        der::read_tlv(&der_bytes, 0x30).ok_or_else(|| CsrError::Structure("truncated".into()))?;
    let info = first_element(outer).ok_or_else(|| CsrError::Structure("no request info".into()))?;
    let key = SubjectKey::from_spki(&request.info.public_key)?;
    allows_key(key.key_type).map_err(CsrError::KeyNotAllowed)?;
    let signature = request
        .signature
        .as_bytes()
        .ok_or_else(|| CsrError::Structure("signature is not a whole number of bytes".into()))?;
    key.verify(&request.algorithm.oid.to_string(), info, signature)?;

    let mut requested_sans = Vec::new();
    let mut ignored_extensions = Vec::new();
    for attribute in request.info.attributes.iter() {
        if attribute.oid.to_string() != EXTENSION_REQUEST {
            continue;
        }
        for value in attribute.values.iter() {
            let extensions: Vec<x509_cert::ext::Extension> = value
                .decode_as()
                .map_err(|e| CsrError::Structure(format!("extensionRequest: {e}")))?;
            for extension in extensions {
                if extension.extn_id.to_string() == SUBJECT_ALT_NAME {
                    let names = SubjectAltName::from_der(extension.extn_value.as_bytes())
                        .map_err(|e| CsrError::Names(e.to_string()))?;
                    for name in names.0 {
                        requested_sans.push(san_from(&name)?);
                    }
                } else {
                    ignored_extensions.push(extension.extn_id.to_string());
                }
            }
        }
    }
    Ok(Csr {
        key,
        subject: request.info.subject,
        requested_sans,
        ignored_extensions,
    })
}

fn san_from(name: &GeneralName) -> Result<San, CsrError> {
    Ok(match name {
        GeneralName::DnsName(n) => San::Dns(n.to_string()),
        GeneralName::UniformResourceIdentifier(u) => San::Uri(u.to_string()),
        GeneralName::Rfc822Name(e) => San::Email(e.to_string()),
        GeneralName::IpAddress(bytes) => {
            let b = bytes.as_bytes();
            let ip = match b.len() {
                4 => std::net::IpAddr::from(<[u8; 4]>::try_from(b).expect("length checked")),
                16 => std::net::IpAddr::from(<[u8; 16]>::try_from(b).expect("length checked")),
                _ => {
                    return Err(CsrError::Names(
                        "an IP address is neither 4 nor 16 bytes".into(),
                    ));
                }
            };
            San::Ip(ip)
        }
        GeneralName::OtherName(other)
            if other.type_id.to_string() == ID_ON_HARDWARE_MODULE_NAME =>
        {
            use x509_cert::der::Encode;
            let value = other
                .value
                .to_der()
                .map_err(|e| CsrError::Names(e.to_string()))?;
            hardware_module_name(&value).ok_or_else(|| {
                CsrError::Names("a HardwareModuleName is not SEQUENCE { OID, OCTET STRING }".into())
            })??
        }
        other => {
            let kind = match other {
                GeneralName::OtherName(_) => "otherName",
                GeneralName::DirectoryName(_) => "directoryName",
                GeneralName::EdiPartyName(_) => "ediPartyName",
                _ => "registeredID",
            };
            return Err(CsrError::Names(format!("{kind} names are not supported")));
        }
    })
}

/// Reads HardwareModuleName ::= SEQUENCE { hwType OBJECT IDENTIFIER, hwSerialNum OCTET
/// STRING }; `None` when it is not that shape.
fn hardware_module_name(value: &[u8]) -> Option<Result<San, CsrError>> {
    let (body, rest) = der::read_tlv(value, 0x30)?;
    let (oid, body) = der::read_tlv(body, 0x06)?;
    let (serial, body) = der::read_tlv(body, 0x04)?;
    if !rest.is_empty() || !body.is_empty() {
        return None;
    }
    let oid = x509_cert::der::asn1::ObjectIdentifier::from_bytes(oid).ok()?;
    Some(San::hardware_module(&oid.to_string(), serial).map_err(CsrError::Names))
}

/// The text of the first subject attribute with this OID (UTF8String, PrintableString or
/// IA5String).
pub fn attribute(subject: &Name, oid: &str) -> Option<String> {
    use x509_cert::der::asn1::{Ia5StringRef, PrintableStringRef, Utf8StringRef};
    subject.iter().find_map(|atv| {
        if atv.oid.to_string() != oid {
            return None;
        }
        atv.value
            .decode_as::<Utf8StringRef<'_>>()
            .map(|s| s.to_string())
            .or_else(|_| {
                atv.value
                    .decode_as::<PrintableStringRef<'_>>()
                    .map(|s| s.to_string())
            })
            .or_else(|_| {
                atv.value
                    .decode_as::<Ia5StringRef<'_>>()
                    .map(|s| s.to_string())
            })
            .ok()
    })
}

/// The common name (2.5.4.3).
pub const CN: &str = "2.5.4.3";
/// The serialNumber attribute (2.5.4.5), e.g. a device's hardware serial.
pub const SERIAL_NUMBER: &str = "2.5.4.5";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crafted_pem_armour_is_an_encoding_error_not_a_panic() {
        for input in [
            "-----BEGIN CERTIFICATE REQUEST-----END",
            "-----BEGIN CERTIFICATE REQUEST-----END\nMIIB",
            "-----BEGIN CERTIFICATE REQUEST-----END CERTIFICATE REQUEST-----\n",
            "-----BEGIN CERTIFICATE REQUEST-----\n",
            "-----BEGIN CERTIFICATE REQUEST-----\nMIIB",
            "-----BEGIN-----\n-----END-----",
            "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----",
            "-----BEGIN\n",
            "-----BEGIN",
            "\u{feff}-----BEGIN CERTIFICATE REQUEST-----",
        ] {
            assert!(
                matches!(to_der(input.as_bytes()), Err(CsrError::Encoding)),
                "{input:?}"
            );
        }
    }

    #[test]
    fn pem_base64_and_der_requests_are_all_read() {
        let der = [0x30, 0x03, 0x02, 0x01, 0x00];
        let b64 = STANDARD.encode(der);
        assert_eq!(to_der(&der).unwrap(), der);
        assert_eq!(to_der(b64.as_bytes()).unwrap(), der);
        let pem = format!(
            "-----BEGIN CERTIFICATE REQUEST-----\r\n{b64}\r\n-----END CERTIFICATE REQUEST-----\n"
        );
        assert_eq!(to_der(pem.as_bytes()).unwrap(), der);
        let legacy = format!(
            "-----BEGIN NEW CERTIFICATE REQUEST-----\n{b64}\n-----END NEW CERTIFICATE REQUEST-----"
        );
        assert_eq!(to_der(legacy.as_bytes()).unwrap(), der);
    }
}
