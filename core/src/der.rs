//! The few DER (ITU-T X.690) encodings key custody needs: SubjectPublicKeyInfo, ECDSA-Sig-Value,
//! and reading an RSAPublicKey. Certificates and CRLs are built in `kizuna-ca` with real ASN.1 crates.

const SEQUENCE: u8 = 0x30;
const INTEGER: u8 = 0x02;
const BIT_STRING: u8 = 0x03;
const NULL: u8 = 0x05;
const OID: u8 = 0x06;

/// Appends a tag and a definite length.
pub fn push_header(out: &mut Vec<u8>, tag: u8, len: usize) {
    out.push(tag);
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
}

/// The size of a tag and length for `len` content octets.
pub fn header_len(len: usize) -> usize {
    match len {
        0..0x80 => 2,
        _ => 2 + (usize::BITS - len.leading_zeros()).div_ceil(8) as usize,
    }
}

/// Encodes one TLV.
pub fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len() + 6);
    push_header(&mut out, tag, content.len());
    out.extend_from_slice(content);
    out
}

pub fn sequence(parts: &[&[u8]]) -> Vec<u8> {
    tlv(SEQUENCE, &parts.concat())
}

/// An unsigned big-endian integer, minimally encoded.
pub fn unsigned_integer(be: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(be.len() + 3);
    push_unsigned_integer(&mut out, be);
    out
}

/// Appends an unsigned big-endian integer, minimally encoded.
pub fn push_unsigned_integer(out: &mut Vec<u8>, be: &[u8]) {
    let skip = be.iter().take_while(|b| **b == 0).count();
    let trimmed = &be[skip.min(be.len().saturating_sub(1))..];
    let sign = trimmed.first().is_some_and(|b| b & 0x80 != 0);
    push_header(out, INTEGER, trimmed.len() + usize::from(sign));
    if sign {
        out.push(0);
    }
    out.extend_from_slice(trimmed);
}

pub fn bit_string(bytes: &[u8]) -> Vec<u8> {
    let mut content = Vec::with_capacity(bytes.len() + 1);
    content.push(0);
    content.extend_from_slice(bytes);
    tlv(BIT_STRING, &content)
}

pub fn null() -> Vec<u8> {
    vec![NULL, 0]
}

/// An OBJECT IDENTIFIER from its already-encoded content octets.
pub fn oid(content: &[u8]) -> Vec<u8> {
    tlv(OID, content)
}

/// The content octets of an OBJECT IDENTIFIER given as arcs (e.g. `[1, 3, 6, 1, 5, 5, 7, 1, 1]`).
pub fn oid_content(arcs: &[u64]) -> Vec<u8> {
    let mut out = Vec::new();
    if arcs.len() >= 2 {
        encode_base128(arcs[0] * 40 + arcs[1], &mut out);
    }
    for arc in arcs.iter().skip(2) {
        encode_base128(*arc, &mut out);
    }
    out
}

fn encode_base128(mut value: u64, out: &mut Vec<u8>) {
    let mut bytes = vec![(value & 0x7f) as u8];
    value >>= 7;
    while value > 0 {
        bytes.push(0x80 | (value & 0x7f) as u8);
        value >>= 7;
    }
    bytes.reverse();
    out.extend_from_slice(&bytes);
}

/// A context-specific tag `[n]`, primitive (IMPLICIT string-like) or constructed.
pub fn context(n: u8, constructed: bool, content: &[u8]) -> Vec<u8> {
    tlv(0x80 | if constructed { 0x20 } else { 0 } | n, content)
}

/// A GeneralizedTime (`YYYYMMDDHHMMSSZ`) for a unix time.
pub fn generalized_time(secs: i64) -> Vec<u8> {
    let mut out = Vec::with_capacity(17);
    push_time(&mut out, secs, true);
    out
}

/// An X.509 Time (RFC 5280 §4.1.2.5): UTCTime through 2049, GeneralizedTime from 2050.
pub fn x509_time(secs: i64) -> Vec<u8> {
    let mut out = Vec::with_capacity(17);
    push_x509_time(&mut out, secs);
    out
}

/// Appends an X.509 Time (see [`x509_time`]).
pub fn push_x509_time(out: &mut Vec<u8>, secs: i64) {
    let year = time::OffsetDateTime::from_unix_timestamp(secs)
        .map(|t| t.year())
        .unwrap_or(1970);
    push_time(out, secs, year >= 2050);
}

fn push_time(out: &mut Vec<u8>, secs: i64, generalized: bool) {
    let t =
        time::OffsetDateTime::from_unix_timestamp(secs).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let year = t.year().clamp(0, 9999) as u32;
    let (tag, len, year, width) = if generalized {
        (0x18, 15, year, 4)
    } else {
        (0x17, 13, year % 100, 2)
    };
    out.push(tag);
    out.push(len);
    let mut digits = |value: u32, width: u32| {
        for i in (0..width).rev() {
            out.push(b'0' + (value / 10u32.pow(i) % 10) as u8);
        }
    };
    digits(year, width);
    for part in [
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
    ] {
        digits(u32::from(part), 2);
    }
    out.push(b'Z');
}

pub fn octet_string(bytes: &[u8]) -> Vec<u8> {
    tlv(0x04, bytes)
}

pub fn boolean(value: bool) -> Vec<u8> {
    vec![0x01, 0x01, if value { 0xff } else { 0x00 }]
}

pub fn enumerated(value: u8) -> Vec<u8> {
    vec![0x0a, 0x01, value]
}

/// An X.509 extension: SEQUENCE { extnID, critical (if true), extnValue OCTET STRING }.
pub fn extension(oid_arcs: &[u64], critical: bool, value: &[u8]) -> Vec<u8> {
    let id = oid(&oid_content(oid_arcs));
    let value = octet_string(value);
    if critical {
        sequence(&[&id, &boolean(true), &value])
    } else {
        sequence(&[&id, &value])
    }
}

/// Reads one TLV of any tag; returns (tag, content, rest).
pub fn read_any(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let tag = *input.first()?;
    let (content, rest) = read_tlv(input, tag)?;
    Some((tag, content, rest))
}

/// Reads one TLV with the expected tag; returns (content, rest).
pub fn read_tlv(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    let (&t, rest) = input.split_first()?;
    if t != tag {
        return None;
    }
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (first as usize, rest)
    } else {
        let n = (first & 0x7f) as usize;
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | *b as usize);
        (len, &rest[n..])
    };
    if rest.len() < len {
        return None;
    }
    Some(rest.split_at(len))
}

/// Splits a PKCS#1 RSAPublicKey into (modulus, exponent), big-endian without sign padding.
pub fn rsa_public_key_components(der: &[u8]) -> Option<(&[u8], &[u8])> {
    let (body, _) = read_tlv(der, SEQUENCE)?;
    let (n, rest) = read_tlv(body, INTEGER)?;
    let (e, _) = read_tlv(rest, INTEGER)?;
    let trim = |x: &[u8]| -> usize { x.iter().take_while(|b| **b == 0).count() };
    Some((&n[trim(n)..], &e[trim(e)..]))
}

/// Converts a fixed-width ECDSA signature (r || s) to ECDSA-Sig-Value (RFC 3279).
pub fn ecdsa_fixed_to_der(fixed: &[u8]) -> Vec<u8> {
    let (r, s) = fixed.split_at(fixed.len() / 2);
    sequence(&[&unsigned_integer(r), &unsigned_integer(s)])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_lengths_use_the_long_form() {
        let content = vec![7u8; 300];
        let encoded = tlv(0x04, &content);
        assert_eq!(&encoded[..4], &[0x04, 0x82, 0x01, 0x2c]);
        let (read, rest) = read_tlv(&encoded, 0x04).unwrap();
        assert_eq!(read.len(), 300);
        assert!(rest.is_empty());
    }

    #[test]
    fn header_lengths_match_what_is_written() {
        for len in [0, 1, 0x7f, 0x80, 0xff, 0x100, 0xffff, 0x1_0000, 50_000_000] {
            let mut out = Vec::new();
            push_header(&mut out, 0x30, len);
            assert_eq!(out.len(), header_len(len), "{len}");
        }
    }

    #[test]
    fn integers_get_a_sign_byte_when_the_high_bit_is_set() {
        assert_eq!(unsigned_integer(&[0x80]), vec![0x02, 0x02, 0x00, 0x80]);
        assert_eq!(
            unsigned_integer(&[0x00, 0x00, 0x7f]),
            vec![0x02, 0x01, 0x7f]
        );
        assert_eq!(unsigned_integer(&[0x00]), vec![0x02, 0x01, 0x00]);
    }

    #[test]
    fn times_switch_to_generalized_in_2050() {
        // 2026-11-01T00:00:00Z
        assert_eq!(x509_time(1_793_491_200), tlv(0x17, b"261101000000Z"));
        assert_eq!(
            generalized_time(1_793_491_200),
            tlv(0x18, b"20261101000000Z")
        );
        // 2050-01-01T00:00:00Z
        assert_eq!(x509_time(2_524_608_000)[0], 0x18);
    }

    #[test]
    fn oids_encode_as_x690_says() {
        // id-ad-ocsp 1.3.6.1.5.5.7.48.1
        assert_eq!(
            oid_content(&[1, 3, 6, 1, 5, 5, 7, 48, 1]),
            vec![0x2b, 6, 1, 5, 5, 7, 0x30, 1]
        );
        // 2.16.840 → 0x60, 0x86, 0x48
        assert_eq!(oid_content(&[2, 16, 840]), vec![0x60, 0x86, 0x48]);
    }

    #[test]
    fn truncated_input_is_refused() {
        assert!(read_tlv(&[0x30, 0x05, 0x01], 0x30).is_none());
        assert!(read_tlv(&[0x30], 0x30).is_none());
        assert!(read_tlv(&[0x02, 0x01, 0x01], 0x30).is_none());
    }
}
