a = mmap 0 4p rw private|anonymous
mprotect $a 1p r           => ok
maps
