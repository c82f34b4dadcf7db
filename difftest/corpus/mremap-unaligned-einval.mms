a = mmap 0 2p rw private|anonymous
mremap $a+1 1p 2p maymove  => EINVAL
