r = mmap 0 6p none private|anonymous
mprotect $r+1p 2p r
mprotect $r+3p 2p rw
maps
mprotect $r+1p 4p rw       => ok
maps
