a = mmap 0 1p rw private|anonymous
munmap $a 1p
msync $a 1p sync           => ENOMEM
