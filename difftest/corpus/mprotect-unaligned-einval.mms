a = mmap 0 2p rw private|anonymous
mprotect $a+1 1p r         => EINVAL
