a = mmap 0 4p rw private|anonymous
mprotect $a+3p 1p none     => ok
maps
