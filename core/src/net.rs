//! Network address ranges (CIDR), as configuration and name rules write them.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// An IP range `address/prefix`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    pub addr: IpAddr,
    pub prefix: u8,
}

impl FromStr for Cidr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| format!("{s:?} is not an IP range"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("{s:?}: bad prefix length"))?,
            None => max,
        };
        Ok(Cidr { addr, prefix })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl Cidr {
    pub fn contains(&self, ip: &IpAddr) -> bool {
        let (a, b) = match (self.addr, ip) {
            (IpAddr::V4(a), IpAddr::V4(b)) => (
                u128::from(u32::from(a)) << 96,
                u128::from(u32::from(*b)) << 96,
            ),
            (IpAddr::V6(a), IpAddr::V6(b)) => (u128::from(a), u128::from(*b)),
            _ => return false,
        };
        // IPv4 addresses sit in the top 32 bits, so the same mask arithmetic serves both.
        let mask = if self.prefix == 0 {
            0
        } else {
            u128::MAX << (128 - u32::from(self.prefix))
        };
        a & mask == b & mask
    }

    /// The range an address-and-mask constraint (RFC 5280 §4.2.1.10) encodes; the mask must
    /// be a prefix.
    pub fn from_constraint_bytes(bytes: &[u8]) -> Result<Cidr, String> {
        let half = match bytes.len() {
            8 => 4,
            32 => 16,
            n => return Err(format!("an IP constraint of {n} bytes")),
        };
        let (addr, mask) = bytes.split_at(half);
        let prefix: u32 = mask.iter().map(|b| b.leading_ones()).sum();
        let full = (prefix / 8) as usize;
        let is_prefix = mask[..full].iter().all(|b| *b == 0xff)
            && mask
                .get(full)
                .is_none_or(|b| b.leading_ones() == prefix % 8 && b.count_ones() == prefix % 8)
            && mask.iter().skip(full + 1).all(|b| *b == 0);
        if !is_prefix {
            return Err("an IP constraint whose mask is not a prefix".into());
        }
        let addr = match half {
            4 => IpAddr::from(<[u8; 4]>::try_from(addr).map_err(|_| "length")?),
            _ => IpAddr::from(<[u8; 16]>::try_from(addr).map_err(|_| "length")?),
        };
        Ok(Cidr {
            addr,
            prefix: prefix as u8,
        })
    }

    /// The address and mask as name constraints encode them (RFC 5280 §4.2.1.10).
    pub fn constraint_bytes(&self) -> Vec<u8> {
        let (addr, len): (Vec<u8>, usize) = match self.addr {
            IpAddr::V4(a) => (a.octets().to_vec(), 4),
            IpAddr::V6(a) => (a.octets().to_vec(), 16),
        };
        let mut mask = vec![0u8; len];
        for (i, byte) in mask.iter_mut().enumerate() {
            let bits = (self.prefix as usize).saturating_sub(i * 8).min(8);
            *byte = if bits == 0 { 0 } else { 0xffu8 << (8 - bits) };
        }
        let mut out = addr;
        out.extend_from_slice(&mask);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_ranges() {
        let net: Cidr = "10.1.0.0/16".parse().unwrap();
        assert!(net.contains(&"10.1.200.3".parse().unwrap()));
        assert!(!net.contains(&"10.2.0.1".parse().unwrap()));
        assert!(!net.contains(&"::1".parse().unwrap()));
        assert_eq!(net.constraint_bytes(), vec![10, 1, 0, 0, 255, 255, 0, 0]);
        let v6: Cidr = "2001:db8::/33".parse().unwrap();
        assert_eq!(&v6.constraint_bytes()[16..21], &[255, 255, 255, 255, 0x80]);
        assert!("10.0.0.0/33".parse::<Cidr>().is_err());
    }
}
