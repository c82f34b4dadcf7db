a = mmap 0 1p rw private|anonymous
mlock $a 0                 => ok
