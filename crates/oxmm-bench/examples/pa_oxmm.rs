//! Profiling aid: oxmm's order-0 alloc/free by phase, for perf.
use oxmm::Gfp;
use oxmm_sim::{Machine, MachineConfig};
use std::time::Instant;
fn main() {
    let m = Machine::boot(&MachineConfig::single(1 << 30, 2), 1).unwrap();
    let k = &m.kernel;
    let mut sum = 0u64;
    let reps: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(20);
    // tight pairs
    let t = Instant::now();
    for _ in 0..reps * 10000 {
        let p = k.alloc_pages(Gfp::GFP_KERNEL, 0).unwrap();
        sum += p.0;
        k.free_pages(p, 0);
    }
    println!("pairs        {:.2} ns/op", t.elapsed().as_nanos() as f64 / (reps * 20000) as f64);
    for n in [64usize, 1024] {
        let mut v = Vec::with_capacity(n);
        let t = Instant::now();
        let rounds = reps * 20000 / n;
        for r in 0..rounds {
            for _ in 0..n {
                v.push(k.alloc_pages(Gfp::GFP_KERNEL, 0).unwrap());
            }
            // a cheap shuffle
            let l = v.len();
            for i in 0..l {
                v.swap(i, (i * 7919 + r) % l);
            }
            for p in v.drain(..) {
                sum += p.0;
                k.free_pages(p, 0);
            }
        }
        println!("rounds {n:5} {:.2} ns/op", t.elapsed().as_nanos() as f64 / (rounds * n * 2) as f64);
    }
    let mut live: Vec<_> = (0..4096).map(|_| k.alloc_pages(Gfp::GFP_KERNEL, 0).unwrap()).collect();
    let mut x = 12345u64;
    let t = Instant::now();
    for _ in 0..reps * 20000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let i = (x % live.len() as u64) as usize;
        let p = live.swap_remove(i);
        k.free_pages(p, 0);
        live.push(k.alloc_pages(Gfp::GFP_KERNEL, 0).unwrap());
    }
    println!("churn        {:.2} ns/op ({sum})", t.elapsed().as_nanos() as f64 / (reps * 40000) as f64);
}
