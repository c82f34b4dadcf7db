a = mmap 0 1p rw private|anonymous
munmap $a 1p
mlock $a 1p                => ENOMEM
