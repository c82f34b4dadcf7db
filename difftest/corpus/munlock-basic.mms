a = mmap 0 3p rw private|anonymous
mlock $a 3p
munlock $a+1p 1p           => ok
smaps
maps
munlock $a 3p              => ok
maps
