a = mmap 0 1p rw private|anonymous
mprotect $a 1p rw|sem
maps
