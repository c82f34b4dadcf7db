r = mmap 0 10p rw private|anonymous
mprotect $r+2p 2p r
munmap $r+5p 1p
munmap $r+1p 7p            => ok
maps
