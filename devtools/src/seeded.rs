//! Deterministic draws for repeatable runs: splitmix64 of (seed, index) as a float in [0, 1),
//! and a seeded shuffle. Not for anything security-related.

/// A well-mixed value in [0, 1) for `index` under `seed`.
pub fn draw(seed: u64, index: u64) -> f64 {
    let mut z = seed.wrapping_add(index.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

/// Fisher-Yates with [`draw`].
pub fn shuffle<T>(items: &mut [T], seed: u64) {
    for i in (1..items.len()).rev() {
        let j = (draw(seed, i as u64) * (i + 1) as f64) as usize;
        items.swap(i, j.min(i));
    }
}
