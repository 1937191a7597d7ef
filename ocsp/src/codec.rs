//! OCSP messages (RFC 6960 §4): requests parsed defensively (anything odd is
//! `malformedRequest`), responses encoded in DER.

use kizuna_core::der;
use kizuna_core::pki::Serial;

/// Requests larger than this are malformed for our purposes (RFC 5019 requests are tiny).
pub const MAX_REQUEST_BYTES: usize = 10 * 1024;
/// At most this many certificates per request.
pub const MAX_CERTS_PER_REQUEST: usize = 10;

const NONCE_OID: [u64; 10] = [1, 3, 6, 1, 5, 5, 7, 48, 1, 2];
const BASIC_OID: [u64; 10] = [1, 3, 6, 1, 5, 5, 7, 48, 1, 1];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HashAlg {
    Sha1,
    Sha256,
    Sha384,
    Sha512,
}

impl HashAlg {
    pub const ALL: [HashAlg; 4] = [
        HashAlg::Sha1,
        HashAlg::Sha256,
        HashAlg::Sha384,
        HashAlg::Sha512,
    ];

    fn from_oid(oid: &[u8]) -> Option<HashAlg> {
        HashAlg::ALL
            .into_iter()
            .find(|h| der::oid_content(h.arcs()) == oid)
    }

    pub(crate) fn arcs(self) -> &'static [u64] {
        match self {
            HashAlg::Sha1 => &[1, 3, 14, 3, 2, 26],
            HashAlg::Sha256 => &[2, 16, 840, 1, 101, 3, 4, 2, 1],
            HashAlg::Sha384 => &[2, 16, 840, 1, 101, 3, 4, 2, 2],
            HashAlg::Sha512 => &[2, 16, 840, 1, 101, 3, 4, 2, 3],
        }
    }

    pub fn digest(self, data: &[u8]) -> Vec<u8> {
        let alg = match self {
            HashAlg::Sha1 => &ring::digest::SHA1_FOR_LEGACY_USE_ONLY,
            HashAlg::Sha256 => &ring::digest::SHA256,
            HashAlg::Sha384 => &ring::digest::SHA384,
            HashAlg::Sha512 => &ring::digest::SHA512,
        };
        ring::digest::digest(alg, data).as_ref().to_vec()
    }
}

/// The certificate a request asks about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertId {
    pub hash: HashAlg,
    pub issuer_name_hash: Vec<u8>,
    pub issuer_key_hash: Vec<u8>,
    /// The certificate's serial number.
    pub serial: Serial,
    /// The CertID exactly as received, echoed in the response.
    pub raw: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OcspRequest {
    pub ids: Vec<CertId>,
    /// The nonce extension's value (extnValue contents), to echo.
    pub nonce: Option<Vec<u8>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParseError {
    Malformed,
    /// A CertID hashed with an algorithm we do not accept.
    UnsupportedHash,
}

fn m<T>(v: Option<T>) -> Result<T, ParseError> {
    v.ok_or(ParseError::Malformed)
}

pub fn parse_request(input: &[u8]) -> Result<OcspRequest, ParseError> {
    if input.len() > MAX_REQUEST_BYTES {
        return Err(ParseError::Malformed);
    }
    let (outer, trailing) = m(der::read_tlv(input, 0x30))?;
    if !trailing.is_empty() {
        return Err(ParseError::Malformed);
    }
    // tbsRequest; an optionalSignature [0] may follow and is not needed.
    let (mut tbs, _signature) = m(der::read_tlv(outer, 0x30))?;
    let mut nonce = None;
    if tbs.first() == Some(&0xa0) {
        let (version, rest) = m(der::read_tlv(tbs, 0xa0))?;
        if version != [0x02, 0x01, 0x00] {
            return Err(ParseError::Malformed);
        }
        tbs = rest;
    }
    if tbs.first() == Some(&0xa1) {
        tbs = m(der::read_tlv(tbs, 0xa1))?.1;
    }
    let (mut list, rest) = m(der::read_tlv(tbs, 0x30))?;
    if !rest.is_empty() {
        let (extensions, rest) = m(der::read_tlv(rest, 0xa2))?;
        if !rest.is_empty() {
            return Err(ParseError::Malformed);
        }
        let (mut exts, _) = m(der::read_tlv(extensions, 0x30))?;
        while !exts.is_empty() {
            let (ext, next) = m(der::read_tlv(exts, 0x30))?;
            exts = next;
            let (oid, mut body) = m(der::read_tlv(ext, 0x06))?;
            if body.first() == Some(&0x01) {
                body = m(der::read_tlv(body, 0x01))?.1;
            }
            let (value, _) = m(der::read_tlv(body, 0x04))?;
            if oid == der::oid_content(&NONCE_OID).as_slice() {
                if value.is_empty() || value.len() > 128 {
                    return Err(ParseError::Malformed);
                }
                nonce = Some(value.to_vec());
            }
        }
    }
    let mut ids = Vec::new();
    while !list.is_empty() {
        let (request, next) = m(der::read_tlv(list, 0x30))?;
        list = next;
        let (cert_id, _single_extensions) = m(der::read_tlv(request, 0x30))?;
        let raw_len = request.len() - _single_extensions.len();
        ids.push(parse_cert_id(cert_id, &request[..raw_len])?);
        if ids.len() > MAX_CERTS_PER_REQUEST {
            return Err(ParseError::Malformed);
        }
    }
    if ids.is_empty() {
        return Err(ParseError::Malformed);
    }
    Ok(OcspRequest { ids, nonce })
}

fn parse_cert_id(body: &[u8], raw: &[u8]) -> Result<CertId, ParseError> {
    let (algorithm, rest) = m(der::read_tlv(body, 0x30))?;
    let (oid, _params) = m(der::read_tlv(algorithm, 0x06))?;
    let (name_hash, rest) = m(der::read_tlv(rest, 0x04))?;
    let (key_hash, rest) = m(der::read_tlv(rest, 0x04))?;
    let (serial, rest) = m(der::read_tlv(rest, 0x02))?;
    if !rest.is_empty() || serial.is_empty() || serial.len() > 21 || serial[0] & 0x80 != 0 {
        return Err(ParseError::Malformed);
    }
    let hash = HashAlg::from_oid(oid).ok_or(ParseError::UnsupportedHash)?;
    Ok(CertId {
        hash,
        issuer_name_hash: name_hash.to_vec(),
        issuer_key_hash: key_hash.to_vec(),
        serial: Serial::from_bytes(serial).ok_or(ParseError::Malformed)?,
        raw: raw.to_vec(),
    })
}

/// What a SingleResponse says about a certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Good,
    Revoked { at: i64, reason: Option<u8> },
    Unknown,
}

pub fn single_response(
    cert_id: &[u8],
    status: Status,
    this_update: i64,
    next_update: i64,
) -> Vec<u8> {
    let status = match status {
        Status::Good => vec![0x80, 0x00],
        Status::Revoked { at, reason } => {
            let mut info = der::generalized_time(at);
            if let Some(code) = reason {
                info.extend(der::context(0, true, &der::enumerated(code)));
            }
            der::context(1, true, &info)
        }
        Status::Unknown => vec![0x82, 0x00],
    };
    der::sequence(&[
        cert_id,
        &status,
        &der::generalized_time(this_update),
        &der::context(0, true, &der::generalized_time(next_update)),
    ])
}

/// The ResponseData to sign: responder by key hash, the single responses, and the nonce.
pub fn response_data(
    responder_key_hash: &[u8],
    produced_at: i64,
    singles: &[Vec<u8>],
    nonce: Option<&[u8]>,
) -> Vec<u8> {
    let responder = der::context(2, true, &der::octet_string(responder_key_hash));
    let parts: Vec<&[u8]> = singles.iter().map(Vec::as_slice).collect();
    let responses = der::sequence(&parts);
    let produced = der::generalized_time(produced_at);
    match nonce {
        Some(value) => {
            let ext = der::extension(&NONCE_OID, false, value);
            der::sequence(&[
                &responder,
                &produced,
                &responses,
                &der::context(1, true, &der::sequence(&[&ext])),
            ])
        }
        None => der::sequence(&[&responder, &produced, &responses]),
    }
}

/// A successful OCSPResponse around a signed BasicOCSPResponse that carries the signer's
/// certificate.
pub fn successful(
    response_data: &[u8],
    signature_algorithm: &[u8],
    signature: &[u8],
    signer_cert: &[u8],
) -> Vec<u8> {
    let basic = der::sequence(&[
        response_data,
        signature_algorithm,
        &der::bit_string(signature),
        &der::context(0, true, &der::sequence(&[signer_cert])),
    ]);
    let bytes = der::sequence(&[
        &der::oid(&der::oid_content(&BASIC_OID)),
        &der::octet_string(&basic),
    ]);
    der::sequence(&[&der::enumerated(0), &der::context(0, true, &bytes)])
}

/// An OCSPResponse with only an error status (RFC 6960 §4.2.1).
pub fn error(status: ErrorStatus) -> Vec<u8> {
    der::sequence(&[&der::enumerated(status as u8)])
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorStatus {
    MalformedRequest = 1,
    InternalError = 2,
    TryLater = 3,
    Unauthorized = 6,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert_id(hash: &[u64], serial: &[u8]) -> Vec<u8> {
        der::sequence(&[
            &der::sequence(&[&der::oid(&der::oid_content(hash)), &der::null()]),
            &der::octet_string(&[1; 20]),
            &der::octet_string(&[2; 20]),
            &der::unsigned_integer(serial),
        ])
    }

    fn request(ids: &[Vec<u8>], nonce: Option<&[u8]>) -> Vec<u8> {
        let requests: Vec<Vec<u8>> = ids.iter().map(|id| der::sequence(&[id])).collect();
        let parts: Vec<&[u8]> = requests.iter().map(Vec::as_slice).collect();
        let list = der::sequence(&parts);
        let tbs = match nonce {
            Some(n) => {
                let ext = der::extension(&NONCE_OID, false, &der::octet_string(n));
                der::sequence(&[&list, &der::context(2, true, &der::sequence(&[&ext]))])
            }
            None => der::sequence(&[&list]),
        };
        der::sequence(&[&tbs])
    }

    #[test]
    fn a_request_with_a_nonce_parses() {
        let parsed = parse_request(&request(
            &[cert_id(&[1, 3, 14, 3, 2, 26], &[0x01, 0xab])],
            Some(b"0123456789abcdef"),
        ))
        .unwrap();
        assert_eq!(parsed.ids.len(), 1);
        assert_eq!(parsed.ids[0].serial.as_str(), "01ab");
        assert_eq!(parsed.ids[0].hash, HashAlg::Sha1);
        assert_eq!(
            parsed.nonce.unwrap(),
            der::octet_string(b"0123456789abcdef")
        );
    }

    #[test]
    fn garbage_truncation_and_oversize_are_malformed() {
        let good = request(&[cert_id(&[1, 3, 14, 3, 2, 26], &[5])], None);
        assert_eq!(parse_request(b"hello"), Err(ParseError::Malformed));
        assert_eq!(
            parse_request(&good[..good.len() - 3]),
            Err(ParseError::Malformed)
        );
        let mut trailing = good.clone();
        trailing.push(0);
        assert_eq!(parse_request(&trailing), Err(ParseError::Malformed));
        assert_eq!(
            parse_request(&vec![0x30; MAX_REQUEST_BYTES + 1]),
            Err(ParseError::Malformed)
        );
        assert_eq!(
            parse_request(&request(&[], None)),
            Err(ParseError::Malformed)
        );
        let many: Vec<Vec<u8>> = (0..11)
            .map(|i| cert_id(&[1, 3, 14, 3, 2, 26], &[i + 1]))
            .collect();
        assert_eq!(
            parse_request(&request(&many, None)),
            Err(ParseError::Malformed)
        );
    }

    #[test]
    fn an_unknown_hash_algorithm_is_reported_as_such() {
        // MD5
        let req = request(&[cert_id(&[1, 2, 840, 113549, 2, 5], &[5])], None);
        assert_eq!(parse_request(&req), Err(ParseError::UnsupportedHash));
    }

    #[test]
    fn statuses_encode_with_their_tags() {
        let id = cert_id(&[1, 3, 14, 3, 2, 26], &[5]);
        let good = single_response(&id, Status::Good, 0, 60);
        assert!(good.windows(2).any(|w| w == [0x80, 0x00]));
        let revoked = single_response(
            &id,
            Status::Revoked {
                at: 10,
                reason: Some(1),
            },
            0,
            60,
        );
        assert!(
            revoked
                .windows(5)
                .any(|w| w == [0xa0, 0x03, 0x0a, 0x01, 0x01]),
            "reason keyCompromise"
        );
        assert_eq!(
            error(ErrorStatus::Unauthorized),
            vec![0x30, 0x03, 0x0a, 0x01, 0x06]
        );
    }
}
