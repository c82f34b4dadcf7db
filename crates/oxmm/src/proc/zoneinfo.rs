//! `/proc/zoneinfo` (Linux's `zoneinfo_show_print` in `mm/vmstat.c`).
//!
//! Every zone of every node is listed, populated or not. The first
//! populated zone of a node also carries the node's counters ("per-node
//! stats"). Every zone shows its free pages, watermarks (with the boost
//! included, as `wmark_pages` reads them), sizes and lowmem reserves; an
//! unpopulated zone stops there, a populated one goes on with its zone and
//! NUMA counters, each CPU's pcp sizes and the counter threshold, and its
//! first frame.

use alloc::string::String;
use core::fmt::Write;
use core::sync::atomic::Ordering::Relaxed;

use super::HPAGE_PMD_ORDER;
use crate::kernel::Kernel;
use crate::page_alloc::{Node, Wmark, Zone};
use crate::vmstat::{NodeStat, NumaStat, ZoneStat};

/// Node counters that /proc prints in huge pages rather than base pages
/// (`vmstat_item_print_in_thp`).
pub(super) fn print_in_thp(item: NodeStat) -> bool {
    matches!(
        item,
        NodeStat::NrAnonTransparentHugepages
            | NodeStat::NrFileHugepages
            | NodeStat::NrShmemHugepages
            | NodeStat::NrShmemPmdmapped
            | NodeStat::NrFilePmdmapped
    )
}

/// A node counter as /proc prints it: clamped at zero, huge-page counters
/// divided into huge pages.
pub(super) fn node_stat_for_print(value: u64, item: NodeStat) -> u64 {
    if print_in_thp(item) {
        value >> HPAGE_PMD_ORDER
    } else {
        value
    }
}

/// Is `zone` the lowest populated zone of its node (`is_zone_first_populated`)?
fn is_first_populated(node: &Node, zone: &Zone) -> bool {
    node.zones.iter().find(|z| z.populated()).is_some_and(|z| core::ptr::eq(z, zone))
}

/// Renders `/proc/zoneinfo`.
pub fn zoneinfo(k: &Kernel) -> String {
    let mut s = String::new();
    for node in &k.nodes {
        for zone in node.zones.iter() {
            show_zone(node, zone, &mut s);
        }
    }
    s
}

/// One zone's block.
fn show_zone(node: &Node, zone: &Zone, s: &mut String) {
    let _ = write!(s, "Node {}, zone {:>8}", node.nid, zone.kind.name());
    if is_first_populated(node, zone) {
        s.push_str("\n  per-node stats");
        for &item in NodeStat::ALL {
            let v = node_stat_for_print(node.stat.get(item as usize).max(0) as u64, item);
            let _ = write!(s, "\n      {:<12} {v}", item.name());
        }
    }
    let _ = write!(
        s,
        "\n  pages free     {}\n        boost    {}\n        min      {}\n        low      {}\
         \n        high     {}\n        promo    {}\n        spanned  {}\n        present  {}\
         \n        managed  {}\n        cma      {}",
        zone.page_state(ZoneStat::NrFreePages),
        zone.watermark_boost.load(Relaxed),
        zone.wmark_pages(Wmark::Min),
        zone.wmark_pages(Wmark::Low),
        zone.wmark_pages(Wmark::High),
        zone.wmark_pages(Wmark::Promo),
        zone.spanned_pages,
        zone.present_pages,
        zone.managed(),
        zone.cma_pages.load(Relaxed),
    );
    s.push_str("\n        protection: (");
    for (i, r) in zone.lowmem_reserve.iter().enumerate() {
        if i > 0 {
            s.push_str(", ");
        }
        let _ = write!(s, "{}", r.load(Relaxed));
    }
    s.push(')');
    // Nothing else means anything for a zone without memory.
    if !zone.populated() {
        s.push('\n');
        return;
    }
    for &item in ZoneStat::ALL {
        let _ = write!(s, "\n      {:<12} {}", item.name(), zone.page_state(item));
    }
    for &item in NumaStat::ALL {
        let _ = write!(s, "\n      {:<12} {}", item.name(), zone.numa_event(item));
    }
    s.push_str("\n  pagesets");
    let threshold = zone.stat_threshold.load(Relaxed);
    for (cpu, pc) in zone.per_cpu.iter().enumerate() {
        let (count, high, batch, high_min, high_max) = {
            let p = pc.pcp.lock();
            (p.count, p.high, p.batch, p.high_min, p.high_max)
        };
        let _ = write!(
            s,
            "\n    cpu: {cpu}\n              count:    {count}\n              high:     {high}\
             \n              batch:    {batch}\n              high_min: {high_min}\
             \n              high_max: {high_max}\n  vm stats threshold: {threshold}"
        );
    }
    // kswapd has not given up on a node until kswapd exists.
    let node_unreclaimable = 0;
    let _ =
        writeln!(s, "\n  node_unreclaimable:  {node_unreclaimable}\n  start_pfn:           {}", zone.zone_start_pfn);
}
