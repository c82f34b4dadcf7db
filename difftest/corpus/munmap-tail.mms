a = mmap 0 4p rw private|anonymous
munmap $a+3p 1p            => ok
maps
