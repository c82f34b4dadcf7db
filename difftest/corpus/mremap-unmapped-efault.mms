a = mmap 0 2p rw private|anonymous
munmap $a 2p
mremap $a 1p 2p maymove    => EFAULT
