//! Password verification at our parameters (argon2id, 19 MiB, t=2, one lane):
//!   cargo bench -p kizuna-idp --bench password
//! Kizuna's `password::verify` (argon2-rust, SIMD chosen at run time, pooled work areas)
//! against the `argon2` crate in a reused work area (what Kizuna ran before), alternating in
//! rounds of 40 hashes per worker, with one worker and with one per core (as under a sign-in
//! storm, where two 19 MiB work areas compete for the cache). Prints each side's median and
//! spread in ms per hash, and the ratio of the medians.

use std::time::Instant;

use argon2::{Algorithm, Argon2, Block, Params, Version};

const ROUNDS: usize = 7;
const PER_ROUND: usize = 40;
const PASSWORD: &str = "correct horse battery staple";

fn the_argon2_crate(area: &mut [Block]) {
    let params = Params::new(19 * 1024, 2, 1, Some(32)).unwrap();
    let mut out = [0u8; 32];
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password_into_with_memory(PASSWORD.as_bytes(), b"0123456789abcdef", &mut out, area)
        .unwrap();
    std::hint::black_box(out);
}

/// Milliseconds per hash with `workers` running side by side.
fn round(runtime: &tokio::runtime::Runtime, workers: usize, phc: &str, ours: bool) -> f64 {
    let start = Instant::now();
    if ours {
        runtime.block_on(async {
            let tasks: Vec<_> = (0..workers)
                .map(|_| {
                    let phc = phc.to_string();
                    tokio::spawn(async move {
                        for _ in 0..PER_ROUND {
                            assert!(kizuna_idp::password::verify(PASSWORD, &phc).await);
                        }
                    })
                })
                .collect();
            for task in tasks {
                task.await.unwrap();
            }
        });
    } else {
        std::thread::scope(|s| {
            for _ in 0..workers {
                s.spawn(|| {
                    let mut area = vec![Block::default(); 19 * 1024];
                    for _ in 0..PER_ROUND {
                        the_argon2_crate(&mut area);
                    }
                });
            }
        });
    }
    start.elapsed().as_secs_f64() * 1000.0 / PER_ROUND as f64
}

fn summary(mut ms: Vec<f64>) -> (f64, f64, f64) {
    ms.sort_by(f64::total_cmp);
    (ms[ms.len() / 2], ms[0], ms[ms.len() - 1])
}

fn main() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let phc = runtime
        .block_on(kizuna_idp::password::hash(PASSWORD))
        .unwrap();
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    println!("argon2-rust backend: {:?}", argon2_rust::detected_backend());
    for workers in [1, cores] {
        let (mut crate_ms, mut ours_ms) = (Vec::new(), Vec::new());
        for _ in 0..ROUNDS {
            crate_ms.push(round(&runtime, workers, &phc, false));
            ours_ms.push(round(&runtime, workers, &phc, true));
        }
        let (a, a_lo, a_hi) = summary(crate_ms);
        let (b, b_lo, b_hi) = summary(ours_ms);
        println!(
            "{workers} at once: argon2 crate {a:.2} ms ({a_lo:.2}–{a_hi:.2}), \
             password::verify {b:.2} ms ({b_lo:.2}–{b_hi:.2}) per hash: {:.2}× faster \
             ({ROUNDS} rounds of {PER_ROUND} per worker, alternating)",
            a / b
        );
    }
}
