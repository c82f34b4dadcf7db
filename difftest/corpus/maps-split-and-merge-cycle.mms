a = mmap 0 8p rw private|anonymous
mprotect $a+1p 1p r
mprotect $a+3p 1p r
mprotect $a+5p 1p r
maps
mprotect $a 8p rw
maps
