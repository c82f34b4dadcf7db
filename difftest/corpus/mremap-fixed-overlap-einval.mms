a = mmap 0 4p rw private|anonymous
mremap $a 2p 2p maymove|fixed $a+1p  => EINVAL
