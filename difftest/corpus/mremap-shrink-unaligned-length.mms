a = mmap 0 4p rw private|anonymous
b = mremap $a 4p 1p+1 0    => ok
maps
