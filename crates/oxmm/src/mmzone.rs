//! Zone and migratetype enumerations, as Linux's `include/linux/mmzone.h`
//! defines them. The structures (`Zone`, `Node`) live in [`crate::page_alloc`].

/// The zones of a node, lowest first (Linux's `enum zone_type`, x86-64 config:
/// no highmem; `Device` exists for ZONE_DEVICE memory and is always empty here).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug, Hash)]
#[repr(u8)]
pub enum ZoneType {
    /// Below 16 MiB, for ISA DMA.
    Dma = 0,
    /// Below 4 GiB, for 32-bit DMA.
    Dma32 = 1,
    /// Everything else the kernel may use for any purpose.
    Normal = 2,
    /// Only movable allocations (kernelcore=/movablecore=).
    Movable = 3,
    /// Device memory (never populated in the simulator).
    Device = 4,
}

/// Number of zone types (`MAX_NR_ZONES`).
pub const MAX_NR_ZONES: usize = 5;

impl ZoneType {
    /// All zone types, lowest first.
    pub const ALL: [ZoneType; MAX_NR_ZONES] =
        [ZoneType::Dma, ZoneType::Dma32, ZoneType::Normal, ZoneType::Movable, ZoneType::Device];

    /// The name Linux prints (`zone_names[]`).
    pub const fn name(self) -> &'static str {
        match self {
            ZoneType::Dma => "DMA",
            ZoneType::Dma32 => "DMA32",
            ZoneType::Normal => "Normal",
            ZoneType::Movable => "Movable",
            ZoneType::Device => "Device",
        }
    }

    /// Zone from its index.
    pub const fn from_index(i: usize) -> ZoneType {
        Self::ALL[i]
    }

    /// The zone's index (`zone_idx`).
    #[inline]
    pub const fn index(self) -> usize {
        self as usize
    }
}

/// Free-list types (Linux's `enum migratetype`, CONFIG_CMA and
/// CONFIG_MEMORY_ISOLATION on).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug, Hash)]
#[repr(u8)]
pub enum MigrateType {
    /// Kernel allocations that never move.
    Unmovable = 0,
    /// User pages and page cache: migration can move them.
    Movable = 1,
    /// Slab caches with shrinkers: reclaim can free them.
    Reclaimable = 2,
    /// A reserve for high-order atomic allocations.
    HighAtomic = 3,
    /// Contiguous memory allocator areas: movable allocations only.
    Cma = 4,
    /// Blocks being isolated for migration or offlining: never allocated from.
    Isolate = 5,
}

/// Number of migratetypes (`MIGRATE_TYPES`).
pub const MIGRATE_TYPES: usize = 6;
/// Types that per-cpu lists hold (`MIGRATE_PCPTYPES`).
pub const MIGRATE_PCPTYPES: usize = 3;

impl MigrateType {
    /// Every type, in Linux's order.
    pub const ALL: [MigrateType; MIGRATE_TYPES] = [
        MigrateType::Unmovable,
        MigrateType::Movable,
        MigrateType::Reclaimable,
        MigrateType::HighAtomic,
        MigrateType::Cma,
        MigrateType::Isolate,
    ];

    /// The name in /proc/pagetypeinfo (`migratetype_names[]`).
    pub const fn name(self) -> &'static str {
        match self {
            MigrateType::Unmovable => "Unmovable",
            MigrateType::Movable => "Movable",
            MigrateType::Reclaimable => "Reclaimable",
            MigrateType::HighAtomic => "HighAtomic",
            MigrateType::Cma => "CMA",
            MigrateType::Isolate => "Isolate",
        }
    }

    /// Type from its index; out-of-range values read as Unmovable.
    #[inline]
    pub const fn from_index(i: usize) -> MigrateType {
        if i < MIGRATE_TYPES {
            Self::ALL[i]
        } else {
            MigrateType::Unmovable
        }
    }

    /// Index into free-list arrays.
    #[inline]
    pub const fn index(self) -> usize {
        self as usize
    }

    /// The types an allocation of this type may steal from when its own
    /// lists are empty, best first (Linux's `fallbacks[]`).
    pub const fn fallbacks(self) -> &'static [MigrateType] {
        match self {
            MigrateType::Unmovable => &[MigrateType::Reclaimable, MigrateType::Movable],
            MigrateType::Movable => &[MigrateType::Reclaimable, MigrateType::Unmovable],
            MigrateType::Reclaimable => &[MigrateType::Unmovable, MigrateType::Movable],
            _ => &[],
        }
    }
}
