a = mmap 0 3p rw private|anonymous
mprotect $a 3p r
maps
