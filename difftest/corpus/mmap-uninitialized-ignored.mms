a = mmap 0 1p rw private|anonymous|uninitialized
read $a 4
