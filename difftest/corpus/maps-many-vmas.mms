a = mmap 0 16p rw private|anonymous
munmap $a+1p 1p
munmap $a+3p 1p
munmap $a+5p 1p
munmap $a+7p 1p
mprotect $a+8p 1p r
maps
