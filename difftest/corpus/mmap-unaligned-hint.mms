# A hint need not be aligned; mmap rounds it.
r = mmap 0 8p none private|anonymous
munmap $r 8p
a = mmap $r+3p+100 1p rw private|anonymous
maps
