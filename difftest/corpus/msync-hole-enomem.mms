a = mmap 0 3p rw private|anonymous
munmap $a+1p 1p
msync $a 3p async          => ENOMEM
