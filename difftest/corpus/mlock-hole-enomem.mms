a = mmap 0 3p rw private|anonymous
munmap $a+1p 1p
mlock $a 3p                => ENOMEM
smaps
