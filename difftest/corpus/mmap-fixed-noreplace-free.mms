a = mmap 0 3p rw private|anonymous
munmap $a+1p 1p
b = mmap $a+1p 1p r private|anonymous|fixed_noreplace   => ok
maps
