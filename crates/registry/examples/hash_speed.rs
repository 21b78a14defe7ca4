//! Measures single-core SHA-256/512 throughput of the `sha2` crate and of aws-lc-rs, the two
//! candidates for hashing uploads (`bench/registry/README.md` records the result).

use sha2::Digest as _;
use std::time::Instant;

fn main() {
    let data = vec![0x5au8; 1 << 20];
    let rounds = 512; // 512 MiB per measurement
    let mib = rounds as f64;
    let time = |name: &str, f: &dyn Fn()| {
        f(); // warm up
        let start = Instant::now();
        f();
        let secs = start.elapsed().as_secs_f64();
        println!("{name:<22} {:>7.0} MiB/s", mib / secs);
    };
    time("sha2 sha256", &|| {
        let mut h = sha2::Sha256::new();
        for _ in 0..rounds {
            h.update(&data);
        }
        std::hint::black_box(h.finalize());
    });
    time("aws-lc-rs sha256", &|| {
        let mut h = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
        for _ in 0..rounds {
            h.update(&data);
        }
        std::hint::black_box(h.finish());
    });
    time("sha2 sha512", &|| {
        let mut h = sha2::Sha512::new();
        for _ in 0..rounds {
            h.update(&data);
        }
        std::hint::black_box(h.finalize());
    });
    time("aws-lc-rs sha512", &|| {
        let mut h = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA512);
        for _ in 0..rounds {
            h.update(&data);
        }
        std::hint::black_box(h.finish());
    });
}
