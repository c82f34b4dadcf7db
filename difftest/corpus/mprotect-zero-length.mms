a = mmap 0 2p rw private|anonymous
mprotect $a 0 r            => ok
maps
