# PROT_GROWSDOWN on a VMA that does not grow down.
a = mmap 0 2p rw private|anonymous
mprotect $a+1p 1p r|growsdown  => EINVAL
