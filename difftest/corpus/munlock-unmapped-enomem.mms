a = mmap 0 1p rw private|anonymous
munmap $a 1p
munlock $a 1p              => ENOMEM
