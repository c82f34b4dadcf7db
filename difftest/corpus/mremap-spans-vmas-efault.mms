# The old range must lie inside one VMA.
a = mmap 0 4p rw private|anonymous
mprotect $a+1p 1p r
mremap $a 2p 4p maymove    => EFAULT
