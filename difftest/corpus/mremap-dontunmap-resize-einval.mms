a = mmap 0 2p rw private|anonymous
mremap $a 2p 3p maymove|dontunmap  => EINVAL
