//! LRU lists of user pages (Linux's `mm/swap.c` and `mm_inline.h`):
//! every mapped user folio sits on one list of its node's lruvec, the
//! inactive or active list of its kind (anonymous or file) or the
//! unevictable list, so that /proc/meminfo's Active/Inactive/Unevictable
//! lines are measured and reclaim (a later component) has lists to scan.
//!
//! Linux batches additions per CPU (`folio_batch`, 31 folios) and meminfo
//! lags by up to that many pages per CPU; we add at once under the
//! lruvec lock, so the counters are exact at every instant.

use crate::kernel::Kernel;
use crate::page::pg;
use crate::page_alloc::list::PageList;
use crate::types::Pfn;
use crate::vmstat::{NodeStat, ZoneStat};

/// The LRU lists (`enum lru_list`), in Linux's order.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(usize)]
pub enum LruList {
    /// Inactive anonymous.
    InactiveAnon,
    /// Active anonymous.
    ActiveAnon,
    /// Inactive file.
    InactiveFile,
    /// Active file.
    ActiveFile,
    /// Unevictable.
    Unevictable,
}

impl LruList {
    const NODE_STAT: [NodeStat; 5] = [
        NodeStat::NrInactiveAnon,
        NodeStat::NrActiveAnon,
        NodeStat::NrInactiveFile,
        NodeStat::NrActiveFile,
        NodeStat::NrUnevictable,
    ];
    const ZONE_STAT: [ZoneStat; 5] = [
        ZoneStat::NrZoneInactiveAnon,
        ZoneStat::NrZoneActiveAnon,
        ZoneStat::NrZoneInactiveFile,
        ZoneStat::NrZoneActiveFile,
        ZoneStat::NrZoneUnevictable,
    ];
}

/// One node's LRU lists (`struct lruvec`); memory cgroups will add one per
/// cgroup and node.
#[derive(Default)]
pub struct Lruvec {
    /// The `lru_lock`.
    pub lock: spin::Mutex<()>,
    /// The lists, indexed by [`LruList`].
    pub lists: [PageList; 5],
}

impl Kernel {
    /// The list a folio belongs on (`folio_lru_list`).
    pub fn folio_lru_list(&self, pfn: Pfn) -> LruList {
        let f = self.memmap.page(pfn).flag_bits();
        if f & pg::UNEVICTABLE != 0 {
            return LruList::Unevictable;
        }
        let file = f & pg::SWAPBACKED == 0;
        match (file, f & pg::ACTIVE != 0) {
            (false, false) => LruList::InactiveAnon,
            (false, true) => LruList::ActiveAnon,
            (true, false) => LruList::InactiveFile,
            (true, true) => LruList::ActiveFile,
        }
    }

    fn lru_account(&self, pfn: Pfn, lru: LruList, n: i64) {
        let page = self.memmap.page(pfn);
        let node = &self.nodes[page.nid()];
        // Under the lruvec lock: the counters change only here.
        node.stat.add_unshared(LruList::NODE_STAT[lru as usize] as usize, n);
        node.zones[page.zonenum() as usize].stat.add_unshared(LruList::ZONE_STAT[lru as usize] as usize, n);
    }

    /// Puts a new folio (order 0) on its LRU list (`folio_add_lru`); with
    /// `unevictable` (a `VM_LOCKED` VMA) on the unevictable list, counted
    /// as mlocked (`mlock_new_folio`).
    pub fn folio_add_lru(&self, pfn: Pfn, unevictable: bool) {
        let page = self.memmap.page(pfn);
        if unevictable {
            page.set(pg::UNEVICTABLE | pg::MLOCKED);
            self.mlock_account(pfn, 1);
        }
        let lru = self.folio_lru_list(pfn);
        let vec = &self.nodes[page.nid()].lruvec;
        let _g = vec.lock.lock();
        page.set(pg::LRU);
        vec.lists[lru as usize].push_front(&self.memmap, pfn);
        self.lru_account(pfn, lru, 1);
    }

    /// Takes a folio off its LRU list (`lruvec_del_folio`), if it is on one.
    pub fn folio_del_lru(&self, pfn: Pfn) {
        let page = self.memmap.page(pfn);
        if !page.test(pg::LRU) {
            return;
        }
        let vec = &self.nodes[page.nid()].lruvec;
        let _g = vec.lock.lock();
        let lru = self.folio_lru_list(pfn);
        vec.lists[lru as usize].remove(&self.memmap, pfn);
        page.clear(pg::LRU);
        self.lru_account(pfn, lru, -1);
    }

    /// Moves a folio to the list its flags now ask for (after mlock or
    /// munlock changed PG_unevictable).
    pub fn folio_move_lru(&self, pfn: Pfn, set: u64, clear: u64) {
        let page = self.memmap.page(pfn);
        let vec = &self.nodes[page.nid()].lruvec;
        let _g = vec.lock.lock();
        let on = page.test(pg::LRU);
        if on {
            let lru = self.folio_lru_list(pfn);
            vec.lists[lru as usize].remove(&self.memmap, pfn);
            self.lru_account(pfn, lru, -1);
        }
        page.set(set);
        page.clear(clear);
        if on {
            let lru = self.folio_lru_list(pfn);
            vec.lists[lru as usize].push_front(&self.memmap, pfn);
            self.lru_account(pfn, lru, 1);
        }
    }

    /// Counts mlocked pages (`NR_MLOCK`, Mlocked in meminfo).
    pub fn mlock_account(&self, pfn: Pfn, n: i64) {
        let page = self.memmap.page(pfn);
        self.nodes[page.nid()].zones[page.zonenum() as usize].stat.add(ZoneStat::NrMlock as usize, n);
    }

    /// Pages on one list of every node.
    pub fn lru_pages(&self, lru: LruList) -> u64 {
        self.nodes.iter().map(|n| n.stat.get(LruList::NODE_STAT[lru as usize] as usize).max(0) as u64).sum()
    }
}
