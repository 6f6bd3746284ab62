//! Is a cluster more than its scope's ordinary incident volume explains?
//!
//! A cluster of `observed` incidents on a scope (a CI, or without a CI a service,
//! location or category) is compared with what the scope's volume brings by chance:
//! `expected = scope incidents × r`, where `r` is the rate at which incidents outside
//! the scope look like the cluster (as similar to its centroid as its members must be).
//! Generic wording makes `r` large and the cluster unremarkable; a specific signature
//! makes `r` tiny. The significance is the Poisson upper tail `P(X ≥ observed)`, also
//! over the cluster's own time span (a burst is judged against the scope's rate over
//! that span), the smaller of the two doubled (two looks); a cluster mixing signatures
//! has it multiplied by the effective number of signatures it mixes. Benjamini–Hochberg
//! then controls the false-discovery rate over every cluster tested.
//!
//! Pure arithmetic; no I/O.

/// `ln Γ(x)` for `x > 0` (Lanczos, g = 7, n = 9): ample for Poisson tails.
pub fn ln_gamma(x: f64) -> f64 {
    const G: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        let pi = std::f64::consts::PI;
        return (pi / (pi * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let mut a = G[0];
    let t = x + 7.5;
    for (i, g) in G.iter().enumerate().skip(1) {
        a += g / (x + i as f64);
    }
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + a.ln()
}

/// `P(X ≥ k)` for `X ~ Poisson(mean)`, summed from `k` upwards (accurate for tiny tails).
pub fn poisson_sf(k: usize, mean: f64) -> f64 {
    if k == 0 {
        return 1.0;
    }
    let mean = mean.max(1e-12);
    if (k as f64) < mean {
        // Lower tail is the small one: 1 - P(X < k).
        let mut cdf = 0.0;
        for i in 0..k {
            cdf += (i as f64 * mean.ln() - mean - ln_gamma(i as f64 + 1.0)).exp();
        }
        return (1.0 - cdf).clamp(0.0, 1.0);
    }
    let mut term = (k as f64 * mean.ln() - mean - ln_gamma(k as f64 + 1.0)).exp();
    let mut sum = 0.0;
    let mut i = k as f64;
    while term > sum * 1e-15 && i < k as f64 + 10_000.0 {
        sum += term;
        i += 1.0;
        term *= mean / i;
    }
    sum.clamp(0.0, 1.0)
}

/// Benjamini–Hochberg q-values, in the order of `p`.
pub fn bh(p: &[f64]) -> Vec<f64> {
    let m = p.len();
    let mut order: Vec<usize> = (0..m).collect();
    order.sort_by(|&a, &b| p[a].total_cmp(&p[b]));
    let mut q = vec![1.0; m];
    let mut running: f64 = 1.0;
    for rank in (0..m).rev() {
        let i = order[rank];
        running = running.min(p[i] * m as f64 / (rank + 1) as f64);
        q[i] = running.min(1.0);
    }
    q
}

/// `exp(entropy)` of counts: 1 for one signature, k for k equally common ones.
pub fn effective_number(counts: &[usize]) -> f64 {
    let n: usize = counts.iter().sum();
    if n == 0 {
        return 1.0;
    }
    let h: f64 = counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = c as f64 / n as f64;
            -p * p.ln()
        })
        .sum();
    h.exp()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn poisson_tails_match_known_values() {
        // P(X >= 1 | 1) = 1 - e^-1
        assert!((poisson_sf(1, 1.0) - (1.0 - (-1.0f64).exp())).abs() < 1e-9);
        // P(X >= 3 | 0.5) = 1 - e^-0.5 (1 + 0.5 + 0.125)
        let want = 1.0 - (-0.5f64).exp() * 1.625;
        assert!((poisson_sf(3, 0.5) - want).abs() < 1e-9);
        assert!(poisson_sf(10, 0.01) < 1e-25);
        assert!(poisson_sf(4, 20.0) > 0.99);
        assert!((ln_gamma(5.0) - 24f64.ln()).abs() < 1e-9);
    }

    #[test]
    fn bh_controls_the_rate_over_all_tests() {
        let q = bh(&[0.01, 0.04, 0.03, 0.5]);
        assert!((q[0] - 0.04).abs() < 1e-12);
        assert!((q[2] - 0.04 * 4.0 / 3.0 * 0.75).abs() < 1e-9 || q[2] <= q[1]);
        assert!(q[3] >= 0.5);
        assert!(q.iter().zip([0.01, 0.04, 0.03, 0.5]).all(|(q, p)| *q >= p));
        assert!((effective_number(&[5]) - 1.0).abs() < 1e-12);
        assert!((effective_number(&[1, 1, 1, 1]) - 4.0).abs() < 1e-9);
    }
}
