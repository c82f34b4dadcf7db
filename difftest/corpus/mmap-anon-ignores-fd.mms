a = mmap 0 1p rw private|anonymous 999 0  => ok
