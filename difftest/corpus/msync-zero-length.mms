a = mmap 0 1p rw private|anonymous
msync $a 0 sync            => ok
