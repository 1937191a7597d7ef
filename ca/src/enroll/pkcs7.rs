//! CMS SignedData "certs-only" (RFC 5652 §5; RFC 7030 §4.1.3, §4.2.3): a SignedData with no
//! content, no signers, only certificates — how EST returns CA certificates and issued ones.

use kizuna_core::der;

const ID_SIGNED_DATA: [u64; 7] = [1, 2, 840, 113549, 1, 7, 2];
const ID_DATA: [u64; 7] = [1, 2, 840, 113549, 1, 7, 1];

/// ContentInfo { signedData, SignedData { version 1, digestAlgorithms {}, encapContentInfo
/// { id-data }, certificates [0] { certs… }, signerInfos {} } }, DER.
pub fn certs_only<'a>(certs: impl IntoIterator<Item = &'a [u8]>) -> Vec<u8> {
    let certificates: Vec<u8> = certs.into_iter().flatten().copied().collect();
    let signed_data = der::sequence(&[
        &der::tlv(0x02, &[1]),
        &der::tlv(0x31, &[]),
        &der::sequence(&[&der::oid(&der::oid_content(&ID_DATA))]),
        &der::context(0, true, &certificates),
        &der::tlv(0x31, &[]),
    ]);
    der::sequence(&[
        &der::oid(&der::oid_content(&ID_SIGNED_DATA)),
        &der::context(0, true, &signed_data),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Walks the structure back: the certificates come out as they went in.
    #[test]
    fn certificates_round_trip() {
        let a = der::sequence(&[&der::tlv(0x02, &[1])]);
        let b = der::sequence(&[&der::tlv(0x02, &[2])]);
        let p7 = certs_only([a.as_slice(), b.as_slice()]);
        let (info, rest) = der::read_tlv(&p7, 0x30).unwrap();
        assert!(rest.is_empty());
        let (oid, rest) = der::read_tlv(info, 0x06).unwrap();
        assert_eq!(oid, der::oid_content(&ID_SIGNED_DATA));
        let (explicit, _) = der::read_tlv(rest, 0xa0).unwrap();
        let (signed, _) = der::read_tlv(explicit, 0x30).unwrap();
        let (version, rest) = der::read_tlv(signed, 0x02).unwrap();
        assert_eq!(version, [1]);
        let (digests, rest) = der::read_tlv(rest, 0x31).unwrap();
        assert!(digests.is_empty());
        let (_, rest) = der::read_tlv(rest, 0x30).unwrap();
        let (certs, rest) = der::read_tlv(rest, 0xa0).unwrap();
        assert_eq!(certs, [a, b].concat());
        let (signers, rest) = der::read_tlv(rest, 0x31).unwrap();
        assert!(signers.is_empty() && rest.is_empty());
    }
}
