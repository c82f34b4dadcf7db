a = mmap 0 3p rw private|anonymous
munmap $a+1p 1p
mincore $a 3p              => ENOMEM
