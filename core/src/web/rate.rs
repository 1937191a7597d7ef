//! Per-address request budgets for unauthenticated endpoints whose every request costs a
//! write or a live signature (ACME nonces, OCSP responses signed on demand): a token bucket
//! per client address, in this replica's memory. IPv6 addresses count per /64, the block a
//! single host can usually pick addresses from.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Instant;

/// Buckets kept before idle (full) ones are dropped.
const PRUNE_AT: usize = 10_000;

/// Up to `per_minute` requests a minute from one address, in bursts of at most as many.
#[derive(Debug)]
pub struct AddressBudget {
    per_minute: u32,
    buckets: Mutex<HashMap<IpAddr, (f64, Instant)>>,
}

impl AddressBudget {
    /// A budget of `per_minute` (0: unlimited).
    pub fn new(per_minute: u32) -> AddressBudget {
        AddressBudget {
            per_minute,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one request from `address`'s budget; false when it is spent. Requests of no
    /// known address (an in-process caller) are not counted.
    pub fn admit(&self, address: Option<IpAddr>) -> bool {
        self.admit_at(address, Instant::now())
    }

    fn admit_at(&self, address: Option<IpAddr>, now: Instant) -> bool {
        let (Some(address), true) = (address, self.per_minute > 0) else {
            return true;
        };
        let capacity = f64::from(self.per_minute);
        let rate = capacity / 60.0;
        let Ok(mut buckets) = self.buckets.lock() else {
            return true;
        };
        if buckets.len() >= PRUNE_AT {
            buckets.retain(|_, (tokens, at)| {
                *tokens + now.saturating_duration_since(*at).as_secs_f64() * rate < capacity
            });
        }
        let (tokens, at) = buckets.entry(block(address)).or_insert((capacity, now));
        *tokens = (*tokens + now.saturating_duration_since(*at).as_secs_f64() * rate).min(capacity);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Seconds until `address` may send again (for `Retry-After`).
    pub fn retry_after_secs(&self) -> u64 {
        if self.per_minute == 0 {
            0
        } else {
            (60 / u64::from(self.per_minute)).max(1)
        }
    }
}

/// The address a budget counts: IPv4 as is, IPv6 by its /64.
fn block(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V4(_) => address,
        IpAddr::V6(v6) => {
            let mut segments = v6.segments();
            segments[4..].fill(0);
            IpAddr::from(segments)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_budget_refills_over_the_minute_per_address() {
        let budget = AddressBudget::new(3);
        let start = Instant::now();
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        for _ in 0..3 {
            assert!(budget.admit_at(Some(a), start));
        }
        assert!(!budget.admit_at(Some(a), start));
        assert!(
            budget.admit_at(Some(b), start),
            "another address has its own"
        );
        assert!(
            budget.admit_at(Some(a), start + Duration::from_secs(20)),
            "one back after 20 s"
        );
        assert!(!budget.admit_at(Some(a), start + Duration::from_secs(21)));
        assert!(budget.admit_at(None, start), "no address: not counted");
    }

    #[test]
    fn an_ipv6_host_cannot_escape_by_changing_its_interface_id() {
        let budget = AddressBudget::new(1);
        let now = Instant::now();
        assert!(budget.admit_at(Some("2001:db8::1".parse().unwrap()), now));
        assert!(!budget.admit_at(Some("2001:db8::2".parse().unwrap()), now));
        assert!(budget.admit_at(Some("2001:db8:0:1::1".parse().unwrap()), now));
    }

    #[test]
    fn zero_means_unlimited() {
        let budget = AddressBudget::new(0);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        assert!((0..1000).all(|_| budget.admit(Some(a))));
    }
}
