//! GFP ("get free pages") flags: what an allocation may do and where its
//! pages may come from. Values and meanings follow Linux's `include/linux/gfp_types.h`.
//!
//! The zone modifiers pick the highest zone an allocation may use
//! ([`Gfp::zone`]); the mobility bits pick the free lists it draws from
//! ([`Gfp::migratetype`]); the reclaim bits say whether it may sleep and
//! reclaim; the rest change watermark checks or the pages' preparation.

use core::fmt;
use core::ops::{BitAnd, BitOr, BitOrAssign, Not};

use crate::mmzone::{MigrateType, ZoneType};

/// A set of GFP flags.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Gfp(pub u32);

#[allow(missing_docs)]
impl Gfp {
    pub const DMA: Gfp = Gfp(0x01);
    pub const HIGHMEM: Gfp = Gfp(0x02);
    pub const DMA32: Gfp = Gfp(0x04);
    pub const MOVABLE: Gfp = Gfp(0x08);
    pub const RECLAIMABLE: Gfp = Gfp(0x10);
    /// May dip below the min watermark (Linux's `__GFP_HIGH`).
    pub const HIGH: Gfp = Gfp(0x20);
    pub const IO: Gfp = Gfp(0x40);
    pub const FS: Gfp = Gfp(0x80);
    pub const ZERO: Gfp = Gfp(0x100);
    pub const DIRECT_RECLAIM: Gfp = Gfp(0x400);
    pub const KSWAPD_RECLAIM: Gfp = Gfp(0x800);
    pub const WRITE: Gfp = Gfp(0x1000);
    pub const NOWARN: Gfp = Gfp(0x2000);
    pub const RETRY_MAYFAIL: Gfp = Gfp(0x4000);
    pub const NOFAIL: Gfp = Gfp(0x8000);
    pub const NORETRY: Gfp = Gfp(0x10000);
    pub const MEMALLOC: Gfp = Gfp(0x20000);
    /// Make a compound page (head + tails) of a multi-page allocation.
    pub const COMP: Gfp = Gfp(0x40000);
    pub const NOMEMALLOC: Gfp = Gfp(0x80000);
    pub const HARDWALL: Gfp = Gfp(0x100000);
    /// Only the preferred node; no fallback to other nodes.
    pub const THISNODE: Gfp = Gfp(0x200000);
    pub const ACCOUNT: Gfp = Gfp(0x400000);
    pub const ZEROTAGS: Gfp = Gfp(0x800000);
    pub const SKIP_ZERO: Gfp = Gfp(0x1000000);
    pub const SKIP_KASAN: Gfp = Gfp(0x2000000);
    pub const NOLOCKDEP: Gfp = Gfp(0x4000000);
    /// No object extensions (`__GFP_NO_OBJ_EXT`); for slab: a sheaf for a
    /// kmalloc cache, whose allocation must not allocate a sheaf in turn.
    pub const NO_OBJ_EXT: Gfp = Gfp(0x8000000);

    pub const RECLAIM: Gfp = Gfp(Self::DIRECT_RECLAIM.0 | Self::KSWAPD_RECLAIM.0);

    /// Atomic context: cannot sleep, may use part of the reserves.
    pub const GFP_ATOMIC: Gfp = Gfp(Self::HIGH.0 | Self::KSWAPD_RECLAIM.0);
    /// The usual kernel allocation: may sleep, reclaim, do I/O and FS calls.
    pub const GFP_KERNEL: Gfp = Gfp(Self::RECLAIM.0 | Self::IO.0 | Self::FS.0);
    pub const GFP_KERNEL_ACCOUNT: Gfp = Gfp(Self::GFP_KERNEL.0 | Self::ACCOUNT.0);
    /// Cannot sleep, wakes kswapd, quiet on failure.
    pub const GFP_NOWAIT: Gfp = Gfp(Self::KSWAPD_RECLAIM.0 | Self::NOWARN.0);
    pub const GFP_NOIO: Gfp = Self::RECLAIM;
    pub const GFP_NOFS: Gfp = Gfp(Self::RECLAIM.0 | Self::IO.0);
    pub const GFP_USER: Gfp = Gfp(Self::RECLAIM.0 | Self::IO.0 | Self::FS.0 | Self::HARDWALL.0);
    pub const GFP_DMA: Gfp = Self::DMA;
    pub const GFP_DMA32: Gfp = Self::DMA32;
    pub const GFP_HIGHUSER: Gfp = Gfp(Self::GFP_USER.0 | Self::HIGHMEM.0);
    /// User pages that migration and compaction may move.
    pub const GFP_HIGHUSER_MOVABLE: Gfp = Gfp(Self::GFP_HIGHUSER.0 | Self::MOVABLE.0 | Self::SKIP_KASAN.0);
    pub const GFP_TRANSHUGE_LIGHT: Gfp =
        Gfp((Self::GFP_HIGHUSER_MOVABLE.0 | Self::COMP.0 | Self::NOMEMALLOC.0 | Self::NOWARN.0) & !Self::RECLAIM.0);
    pub const GFP_TRANSHUGE: Gfp = Gfp(Self::GFP_TRANSHUGE_LIGHT.0 | Self::DIRECT_RECLAIM.0);

    /// Every bit Linux defines; anything else is rejected by [`Gfp::is_valid`].
    pub const ALL_BITS: Gfp = Gfp(0x7ff_fdff);

    /// No flags.
    pub const fn empty() -> Gfp {
        Gfp(0)
    }
    /// True when every bit of `other` is set here.
    #[inline]
    pub const fn contains(self, other: Gfp) -> bool {
        self.0 & other.0 == other.0
    }
    /// True when any bit of `other` is set here.
    #[inline]
    pub const fn intersects(self, other: Gfp) -> bool {
        self.0 & other.0 != 0
    }
    /// True when only defined bits are set.
    pub const fn is_valid(self) -> bool {
        self.0 & !Self::ALL_BITS.0 == 0
    }
    /// May the allocation sleep and reclaim directly (`gfpflags_allow_blocking`)?
    #[inline]
    pub const fn allows_blocking(self) -> bool {
        self.intersects(Self::DIRECT_RECLAIM)
    }

    /// The highest zone this allocation may use (Linux's `gfp_zone`).
    /// On x86-64 there is no highmem, so `__GFP_HIGHMEM` alone means Normal;
    /// `__GFP_HIGHMEM | __GFP_MOVABLE` means Movable.
    #[inline]
    pub const fn zone(self) -> ZoneType {
        if self.intersects(Self::DMA) {
            ZoneType::Dma
        } else if self.intersects(Self::DMA32) {
            ZoneType::Dma32
        } else if self.contains(Gfp(Self::HIGHMEM.0 | Self::MOVABLE.0)) {
            ZoneType::Movable
        } else {
            ZoneType::Normal
        }
    }

    /// The free lists this allocation prefers (Linux's `gfp_migratetype`).
    #[inline]
    pub const fn migratetype(self) -> MigrateType {
        if self.intersects(Self::MOVABLE) {
            MigrateType::Movable
        } else if self.intersects(Self::RECLAIMABLE) {
            MigrateType::Reclaimable
        } else {
            MigrateType::Unmovable
        }
    }
}

impl BitOr for Gfp {
    type Output = Gfp;
    fn bitor(self, rhs: Gfp) -> Gfp {
        Gfp(self.0 | rhs.0)
    }
}
impl BitOrAssign for Gfp {
    fn bitor_assign(&mut self, rhs: Gfp) {
        self.0 |= rhs.0;
    }
}
impl BitAnd for Gfp {
    type Output = Gfp;
    fn bitand(self, rhs: Gfp) -> Gfp {
        Gfp(self.0 & rhs.0)
    }
}
impl Not for Gfp {
    type Output = Gfp;
    fn not(self) -> Gfp {
        Gfp(!self.0)
    }
}

const NAMES: &[(Gfp, &str)] = &[
    (Gfp::DMA, "__GFP_DMA"),
    (Gfp::HIGHMEM, "__GFP_HIGHMEM"),
    (Gfp::DMA32, "__GFP_DMA32"),
    (Gfp::MOVABLE, "__GFP_MOVABLE"),
    (Gfp::RECLAIMABLE, "__GFP_RECLAIMABLE"),
    (Gfp::HIGH, "__GFP_HIGH"),
    (Gfp::IO, "__GFP_IO"),
    (Gfp::FS, "__GFP_FS"),
    (Gfp::ZERO, "__GFP_ZERO"),
    (Gfp::DIRECT_RECLAIM, "__GFP_DIRECT_RECLAIM"),
    (Gfp::KSWAPD_RECLAIM, "__GFP_KSWAPD_RECLAIM"),
    (Gfp::WRITE, "__GFP_WRITE"),
    (Gfp::NOWARN, "__GFP_NOWARN"),
    (Gfp::RETRY_MAYFAIL, "__GFP_RETRY_MAYFAIL"),
    (Gfp::NOFAIL, "__GFP_NOFAIL"),
    (Gfp::NORETRY, "__GFP_NORETRY"),
    (Gfp::MEMALLOC, "__GFP_MEMALLOC"),
    (Gfp::COMP, "__GFP_COMP"),
    (Gfp::NOMEMALLOC, "__GFP_NOMEMALLOC"),
    (Gfp::HARDWALL, "__GFP_HARDWALL"),
    (Gfp::THISNODE, "__GFP_THISNODE"),
    (Gfp::ACCOUNT, "__GFP_ACCOUNT"),
    (Gfp::ZEROTAGS, "__GFP_ZEROTAGS"),
    (Gfp::SKIP_ZERO, "__GFP_SKIP_ZERO"),
    (Gfp::SKIP_KASAN, "__GFP_SKIP_KASAN"),
    (Gfp::NOLOCKDEP, "__GFP_NOLOCKDEP"),
    (Gfp::NO_OBJ_EXT, "__GFP_NO_OBJ_EXT"),
];

impl fmt::Debug for Gfp {
    /// Prints the flags as Linux's `%pGg` does: `__GFP_IO|__GFP_FS|...`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut rest = self.0;
        let mut first = true;
        for (flag, name) in NAMES {
            if rest & flag.0 != 0 {
                if !first {
                    f.write_str("|")?;
                }
                f.write_str(name)?;
                first = false;
                rest &= !flag.0;
            }
        }
        if rest != 0 || first {
            if !first {
                f.write_str("|")?;
            }
            write!(f, "{rest:#x}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zone_and_migratetype_follow_linux() {
        assert_eq!(Gfp::GFP_KERNEL.zone(), ZoneType::Normal);
        assert_eq!(Gfp::GFP_HIGHUSER_MOVABLE.zone(), ZoneType::Movable);
        assert_eq!(Gfp::GFP_HIGHUSER.zone(), ZoneType::Normal);
        assert_eq!((Gfp::GFP_KERNEL | Gfp::DMA32).zone(), ZoneType::Dma32);
        assert_eq!((Gfp::GFP_KERNEL | Gfp::DMA).zone(), ZoneType::Dma);
        assert_eq!(Gfp::GFP_KERNEL.migratetype(), MigrateType::Unmovable);
        assert_eq!(Gfp::GFP_HIGHUSER_MOVABLE.migratetype(), MigrateType::Movable);
        assert_eq!((Gfp::GFP_KERNEL | Gfp::RECLAIMABLE).migratetype(), MigrateType::Reclaimable);
        assert!(Gfp::GFP_KERNEL.allows_blocking());
        assert!(!Gfp::GFP_ATOMIC.allows_blocking());
        assert!(!Gfp::GFP_TRANSHUGE_LIGHT.allows_blocking());
        assert!(Gfp::GFP_TRANSHUGE.allows_blocking());
    }

    #[test]
    fn debug_prints_linux_names() {
        assert_eq!(format!("{:?}", Gfp::GFP_KERNEL), "__GFP_IO|__GFP_FS|__GFP_DIRECT_RECLAIM|__GFP_KSWAPD_RECLAIM");
        assert_eq!(format!("{:?}", Gfp(0x200)), "0x200");
        assert!(!Gfp(0x200).is_valid());
        assert!(Gfp::GFP_HIGHUSER_MOVABLE.is_valid());
    }
}
