# MAP_FIXED over two VMAs and a hole.
r = mmap 0 10p none private|anonymous
mprotect $r+2p 2p rw
munmap $r+5p 1p
mmap $r+1p 7p r private|anonymous|fixed  => ok
maps
