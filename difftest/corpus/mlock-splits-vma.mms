a = mmap 0 5p rw private|anonymous
mlock $a+2p 1p             => ok
maps
munlock $a+2p 1p           => ok
maps
